#include "gateway/base/metrics/registry.h"

#include <cstdlib>

#include "gateway/base/log.h"
#include "gateway/base/metrics/text_format.h"

namespace impgate::metrics {
namespace {

constexpr std::string_view kComp = "metrics";

[[noreturn]] void registrationError(std::string_view message, std::string_view name) {
  log::error(kComp, message, {{"metric", name}});
  log::flush();  // abort() skips the exit flush; the line says why we die
  std::abort();
}

void appendValue(std::string& out, const Counter& c) {
  out.append(std::to_string(c.value()));
}
void appendValue(std::string& out, const Gauge& g) {
  out.append(std::to_string(g.value()));
}

template <typename Series>
constexpr std::string_view typeName();
template <>
constexpr std::string_view typeName<Counter>() {
  return "counter";
}
template <>
constexpr std::string_view typeName<Gauge>() {
  return "gauge";
}

}  // namespace

template <typename Series>
Family<Series>::Family(std::string name, std::string help, std::vector<std::string> labelNames)
    : name_(std::move(name)), help_(std::move(help)), labelNames_(std::move(labelNames)) {}

template <typename Series>
Series& Family<Series>::with(std::initializer_list<std::string_view> values) {
  if (values.size() != labelNames_.size()) {
    registrationError("wrong number of label values", name_);
  }
  std::string key;
  for (auto v : values) key.append(v).push_back('\0');
  std::lock_guard lock(mutex_);
  if (auto it = index_.find(key); it != index_.end()) return it->second->series;
  if (entries_.size() >= kMaxSeries) {
    key.clear();
    for (std::size_t i = 0; i < values.size(); ++i) key.append("other").push_back('\0');
    if (auto it = index_.find(key); it != index_.end()) return it->second->series;
    log::warn(kComp, "series limit reached; new label values share the 'other' series",
              {{"metric", name_}});
    auto entry = std::make_unique<Entry>();
    entry->values.assign(values.size(), "other");
    auto* raw = entry.get();
    entries_.push_back(std::move(entry));
    index_.emplace(std::move(key), raw);
    return raw->series;
  }
  auto entry = std::make_unique<Entry>();
  entry->values.assign(values.begin(), values.end());
  auto* raw = entry.get();
  entries_.push_back(std::move(entry));
  index_.emplace(std::move(key), raw);
  return raw->series;
}

template <typename Series>
void Family<Series>::render(std::string& out) const {
  out.append("# HELP ").append(name_).push_back(' ');
  text_format::appendHelp(out, help_);
  out.append("\n# TYPE ").append(name_).push_back(' ');
  out.append(typeName<Series>()).push_back('\n');
  std::lock_guard lock(mutex_);
  for (const auto& e : entries_) {
    out.append(name_);
    if (!labelNames_.empty()) {
      out.push_back('{');
      for (std::size_t i = 0; i < labelNames_.size(); ++i) {
        if (i > 0) out.push_back(',');
        out.append(labelNames_[i]).append("=\"");
        text_format::appendLabelValue(out, e->values[i]);
        out.push_back('"');
      }
      out.push_back('}');
    }
    out.push_back(' ');
    appendValue(out, e->series);
    out.push_back('\n');
  }
}

template class Family<Counter>;
template class Family<Gauge>;

struct Registry::Slot {
  // Exactly one of these: a family of counters or gauges, or a counter read by a function.
  std::unique_ptr<CounterFamily> counters;
  std::unique_ptr<GaugeFamily> gauges;
  std::string functionName;
  std::string functionHelp;
  std::function<uint64_t()> function;

  const std::string& name() const {
    return counters ? counters->name() : gauges ? gauges->name() : functionName;
  }
  void render(std::string& out) const {
    if (counters) {
      counters->render(out);
    } else if (gauges) {
      gauges->render(out);
    } else {
      out.append("# HELP ").append(functionName).push_back(' ');
      text_format::appendHelp(out, functionHelp);
      out.append("\n# TYPE ").append(functionName).append(" counter\n");
      out.append(functionName).push_back(' ');
      out.append(std::to_string(function())).push_back('\n');
    }
  }
};

Registry::Registry() = default;
Registry::~Registry() = default;

template <typename F>
F& Registry::family(std::string_view name, std::string_view help,
                    std::vector<std::string> labelNames) {
  if (!text_format::isValidMetricName(name)) registrationError("invalid metric name", name);
  for (const auto& l : labelNames) {
    if (!text_format::isValidLabelName(l)) registrationError("invalid label name", name);
  }
  constexpr bool kIsCounter = std::is_same_v<F, CounterFamily>;
  std::lock_guard lock(mutex_);
  for (const auto& slot : slots_) {
    if (slot->name() != name) continue;
    F* existing = nullptr;
    if constexpr (kIsCounter) {
      existing = slot->counters.get();
    } else {
      existing = slot->gauges.get();
    }
    if (!existing || existing->labelNames() != labelNames) {
      registrationError("metric registered twice with another type or labels", name);
    }
    return *existing;
  }
  auto fam = std::make_unique<F>(std::string(name), std::string(help), std::move(labelNames));
  F& ref = *fam;
  auto slot = std::make_unique<Slot>();
  if constexpr (kIsCounter) {
    slot->counters = std::move(fam);
  } else {
    slot->gauges = std::move(fam);
  }
  slots_.push_back(std::move(slot));
  return ref;
}

Counter& Registry::counter(std::string_view name, std::string_view help) {
  return family<CounterFamily>(name, help, {}).with(std::initializer_list<std::string_view>{});
}

Gauge& Registry::gauge(std::string_view name, std::string_view help) {
  return family<GaugeFamily>(name, help, {}).with(std::initializer_list<std::string_view>{});
}

CounterFamily& Registry::counterFamily(std::string_view name, std::string_view help,
                                       std::vector<std::string> labelNames) {
  return family<CounterFamily>(name, help, std::move(labelNames));
}

GaugeFamily& Registry::gaugeFamily(std::string_view name, std::string_view help,
                                   std::vector<std::string> labelNames) {
  return family<GaugeFamily>(name, help, std::move(labelNames));
}

void Registry::counterFunction(std::string_view name, std::string_view help,
                               std::function<uint64_t()> read) {
  if (!text_format::isValidMetricName(name)) registrationError("invalid metric name", name);
  std::lock_guard lock(mutex_);
  for (const auto& slot : slots_) {
    if (slot->name() == name) registrationError("metric registered twice", name);
  }
  auto slot = std::make_unique<Slot>();
  slot->functionName = name;
  slot->functionHelp = help;
  slot->function = std::move(read);
  slots_.push_back(std::move(slot));
}

std::string Registry::render() const {
  std::string out;
  render(out);
  return out;
}

void Registry::render(std::string& out) const {
  std::lock_guard lock(mutex_);
  for (const auto& slot : slots_) slot->render(out);
}

}  // namespace impgate::metrics
