// Counters and gauges for the gateway, rendered in the Prometheus text format (0.0.4).
//
// Metrics are registered at start-up; the code that updates one keeps the Counter& or Gauge& it
// got back and bumps it with a single relaxed atomic operation, so the hot path never locks or
// looks anything up. A family (a metric with labels) creates the series for a new combination of
// label values under a mutex on first use: call with() at start-up or on rare paths, and keep
// the reference. The Registry owns every metric; references stay valid for its lifetime.
//
//   metrics::Registry reg;
//   auto& frames = reg.counter("impgate_frames_total", "Frames received from devices.");
//   auto& errors = reg.counterFamily("impgate_errors_total", "Errors by reason.", {"reason"});
//   auto& tooLarge = errors.with("frame_too_large");
//   frames.inc();  tooLarge.inc();
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace impgate::metrics {

// Only goes up (resets with the process).
class Counter {
 public:
  void inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// Goes up and down: connections, queue depths.
class Gauge {
 public:
  void set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void add(int64_t d = 1) { value_.fetch_add(d, std::memory_order_relaxed); }
  void sub(int64_t d = 1) { value_.fetch_sub(d, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

enum class Type { kCounter, kGauge };

// One metric name with a fixed list of label names, and one series per combination of label
// values. A family with no label names has exactly one series.
template <typename Series>
class Family {
 public:
  // Most series a family creates; further combinations share one series whose label values
  // are all "other", so a bug that labels by something unbounded cannot eat the memory.
  static constexpr std::size_t kMaxSeries = 1000;

  Family(std::string name, std::string help, std::vector<std::string> labelNames);

  // The series for `values` (one per label name, in order). Locks; not for the hot path.
  Series& with(std::initializer_list<std::string_view> values);
  Series& with(std::string_view value) { return with({value}); }

  const std::string& name() const { return name_; }
  const std::vector<std::string>& labelNames() const { return labelNames_; }
  // Appends HELP, TYPE and every series, in creation order.
  void render(std::string& out) const;

 private:
  struct Entry {
    std::vector<std::string> values;
    Series series;
  };

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> labelNames_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::unordered_map<std::string, Entry*> index_;  // key: values joined with '\0'
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registering a name again with the same type and labels returns the existing metric. Invalid
  // names, or a name reused with another type or labels, are programming errors: logged, abort.
  Counter& counter(std::string_view name, std::string_view help);
  Gauge& gauge(std::string_view name, std::string_view help);
  CounterFamily& counterFamily(std::string_view name, std::string_view help,
                               std::vector<std::string> labelNames);
  GaugeFamily& gaugeFamily(std::string_view name, std::string_view help,
                           std::vector<std::string> labelNames);
  // A counter whose value lives elsewhere (e.g. in the log, which cannot depend on metrics):
  // `read` is called on every render, on the rendering thread, and must be cheap, thread-safe
  // and never go down. Registering a name twice is a programming error.
  void counterFunction(std::string_view name, std::string_view help,
                       std::function<uint64_t()> read);

  // The exposition text of every metric, in registration order. Safe to call from any thread
  // while metrics are being updated.
  std::string render() const;
  void render(std::string& out) const;

 private:
  struct Slot;
  template <typename F>
  F& family(std::string_view name, std::string_view help, std::vector<std::string> labelNames);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Slot>> slots_;
};

}  // namespace impgate::metrics
