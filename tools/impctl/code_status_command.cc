#include "tools/impctl/code_status_command.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "bus/fleet/descriptors.h"
#include "bus/topics/topic_scheme.h"
#include "tools/impctl/code_push_support.h"

namespace impgate::impctl {

namespace fleet = bus::fleet;
using Clock = std::chrono::steady_clock;

namespace {

// The states `code status` counts, in the order it prints them. "pending": a device of the
// group with no state for the deployment yet (offline, or not yet reached by its stage).
constexpr const char* kCountedStates[] = {"pending", "offered",  "transferring", "installed",
                                          "current", "deferred", "failed"};
// Failures printed in text; --json lists all.
constexpr std::size_t kFailuresShown = 5;
// Registry refusals of a state printed (as warnings), per run.
constexpr std::size_t kRecordProblemsShown = 3;
// Each collection of retained messages: at most this long.
constexpr auto kCollectDeadline = std::chrono::seconds(20);

struct RunningCode {
  std::string code;             // what the device reported; empty: not known
  std::string kind;             // target | deployed | stored | unknown | none
  std::int64_t deployment = 0;  // for "deployed": the group's latest deployment of it
  std::int64_t devices = 0;
  std::int64_t online = 0;
};

struct Snapshot {
  std::optional<storage::Deployment> deployment;
  std::int64_t devices = 0;  // active devices of the group (registry)
  std::int64_t online = 0;
  std::map<std::string, std::int64_t> counts;
  std::vector<RunningCode> running;
  std::vector<fleet::DeviceCodeState> failures;
  std::vector<fleet::NodeRolloutView> nodes;  // views of this deployment
  std::int64_t unknownDevices = 0;            // states of devices the registry does not know
  std::int64_t recorded = 0;                  // states appended to the push history now
  std::int64_t unrecorded = 0;                // states the registry refused
  std::int64_t ignored = 0;                   // payloads that did not decode
  bool done = false;                          // --until-done's condition
  bool settled = false;                       // --watch stops

  std::int64_t count(const char* state) const {
    auto it = counts.find(state);
    return it == counts.end() ? 0 : it->second;
  }
  std::int64_t finished() const {
    return count("installed") + count("current") + count("deferred") + count("failed");
  }
  std::vector<std::string> haltedBy() const {
    std::vector<std::string> out;
    for (const auto& n : nodes) {
      if (n.halted) out.push_back(n.node);
    }
    return out;
  }
};

struct Presence {
  bool online = false;
  std::string code;
};

// A retained presence (docs/topics.md, "Presence"); nullopt when it is not one.
std::optional<Presence> parsePresence(const std::string& payload) {
  nlohmann::json json = nlohmann::json::parse(payload, nullptr, false);
  if (!json.is_object()) return std::nullopt;
  auto status = json.find("status");
  if (status == json.end() || !status->is_string()) return std::nullopt;
  Presence p;
  p.online = status->get<std::string>() == "online";
  auto code = json.find("code");
  if (code != json.end() && code->is_string()) p.code = code->get<std::string>();
  return p;
}

class StatusReader {
 public:
  StatusReader(const CommandContext& ctx, RegistryHandle& registry, FleetBus& bus,
               std::string group)
      : ctx_(ctx), registry_(registry), bus_(bus), group_(std::move(group)) {}

  // One look at the bus and the registry; false with `error_` when either failed.
  bool read(Snapshot& snap);
  const std::string& error() const { return error_; }
  // Registry refusals seen so far (first few), for warnings.
  const std::vector<std::string>& recordProblems() const { return recordProblems_; }

 private:
  bool known(const std::string& device);
  void record(const fleet::DeviceCodeState& s, Snapshot& snap);

  const CommandContext& ctx_;
  RegistryHandle& registry_;
  FleetBus& bus_;
  std::string group_;
  std::map<std::string, bool> known_;  // device id -> enrolled
  std::vector<std::string> recordProblems_;
  std::string error_;
};

bool StatusReader::known(const std::string& device) {
  auto it = known_.find(device);
  if (it != known_.end()) return it->second;
  storage::Result<std::optional<storage::DeviceRecord>> found = registry_.devices().find(device);
  bool isKnown = found && found->has_value();
  known_[device] = isKnown;
  return isKnown;
}

void StatusReader::record(const fleet::DeviceCodeState& s, Snapshot& snap) {
  storage::PushState state{
      s.device, s.group, s.deployment, s.target, std::string(fleet::codeStateName(s.state)),
      s.reason, s.atMs,  s.node};
  storage::Result<bool> appended = registry_.code().recordPushState(state);
  if (!appended) {
    ++snap.unrecorded;
    if (recordProblems_.size() < kRecordProblemsShown) {
      recordProblems_.push_back("the state of " + s.device + " (deployment " +
                                std::to_string(s.deployment) + ", " +
                                std::string(fleet::codeStateName(s.state)) +
                                ") was not recorded: " + registryError(appended.error()));
    }
    return;
  }
  if (*appended) ++snap.recorded;
}

bool StatusReader::read(Snapshot& snap) {
  snap = Snapshot{};
  storage::Result<std::optional<storage::Deployment>> latest =
      registry_.code().latestDeployment(group_);
  if (!latest) {
    error_ = latest.error().code == storage::ErrorCode::kNotFound
                 ? latest.error().message + "; `impctl group list` shows the groups"
                 : registryError(latest.error());
    return false;
  }
  snap.deployment = *latest;
  storage::Result<std::vector<std::string>> members = registry_.code().activeDevices(group_);
  storage::Result<std::vector<storage::Deployment>> history =
      registry_.code().listDeployments(group_);
  storage::Result<std::vector<storage::CodeVersion>> versions = registry_.code().listVersions();
  for (const storage::Error* e :
       {members ? nullptr : &members.error(), history ? nullptr : &history.error(),
        versions ? nullptr : &versions.error()}) {
    if (e) {
      error_ = registryError(*e);
      return false;
    }
  }
  std::set<std::string> active(members->begin(), members->end());
  snap.devices = static_cast<std::int64_t>(active.size());
  std::map<std::string, std::int64_t> deployedAs;  // code -> the group's latest deployment of it
  for (const storage::Deployment& d : *history) deployedAs[d.codeSha] = d.number;
  std::set<std::string> stored;
  for (const storage::CodeVersion& v : *versions) stored.insert(v.sha);

  const bus::TopicScheme& topics = bus_.topics();
  auto codeStates = bus_.collectRetained(topics.allDeviceCodeStates(), kCollectDeadline);
  if (!codeStates) {
    error_ = "cannot read the device code states: " + codeStates.error().message;
    return false;
  }
  auto presences = bus_.collectRetained(topics.allDeviceState(), kCollectDeadline);
  if (!presences) {
    error_ = "cannot read the device presences: " + presences.error().message;
    return false;
  }
  auto views = bus_.collectRetained(topics.groupRollouts(group_), kCollectDeadline);
  if (!views) {
    error_ = "cannot read the rollout views: " + views.error().message;
    return false;
  }

  const storage::Deployment* target = snap.deployment ? &*snap.deployment : nullptr;
  // The device's state for the live deployment, by device.
  std::map<std::string, fleet::DeviceCodeState> current;
  for (const auto& [topic, payload] : *codeStates) {
    fleet::Result<fleet::DeviceCodeState> s = fleet::decodeDeviceCodeState(payload);
    if (!s) {
      ++snap.ignored;
      continue;
    }
    if (s->group != group_) continue;  // another group's rollout
    std::optional<bus::TopicScheme::Parsed> parsed = topics.parse(topic);
    if (!parsed || parsed->name != s->device) {
      ++snap.ignored;  // a state published under another device's topic
      continue;
    }
    if (!known(s->device)) {
      ++snap.unknownDevices;
      continue;
    }
    record(*s, snap);
    if (target && s->deployment == target->number && s->target == target->codeSha &&
        active.count(s->device) != 0) {
      current[s->device] = std::move(s).value();
    }
  }
  for (const auto& [device, s] : current) {
    ++snap.counts[std::string(fleet::codeStateName(s.state))];
    if (s.state == fleet::CodeState::kFailed) snap.failures.push_back(s);
  }
  snap.counts["pending"] = snap.devices - static_cast<std::int64_t>(current.size());
  std::sort(snap.failures.begin(), snap.failures.end(),
            [](const auto& a, const auto& b) { return a.atMs < b.atMs; });

  // What each device of the group runs: its presence while online; else what its last state
  // says (installed/current: the target; else the code it reported).
  std::map<std::string, RunningCode> byCode;
  std::int64_t onlineOnTarget = 0;
  std::int64_t onlineSettled = 0;
  for (const std::string& device : active) {
    std::optional<Presence> presence;
    auto it = presences->find(topics.deviceState(device));
    if (it != presences->end()) presence = parsePresence(it->second);
    bool online = presence && presence->online;
    std::string code;
    if (online) {
      code = presence->code;
    } else if (auto st = current.find(device); st != current.end()) {
      bool onTarget = st->second.state == fleet::CodeState::kInstalled ||
                      st->second.state == fleet::CodeState::kCurrent;
      code = onTarget ? st->second.target : st->second.running;
    }
    RunningCode& r = byCode[code];
    r.code = code;
    ++r.devices;
    if (online) {
      ++snap.online;
      ++r.online;
      bool onTarget = target && code == target->codeSha;
      onlineOnTarget += onTarget ? 1 : 0;
      auto st = current.find(device);
      bool gaveUp = st != current.end() && (st->second.state == fleet::CodeState::kFailed ||
                                            st->second.state == fleet::CodeState::kDeferred);
      onlineSettled += (onTarget || gaveUp) ? 1 : 0;
    }
  }
  for (auto& [code, r] : byCode) {
    if (code.empty()) {
      r.kind = "none";
    } else if (target && code == target->codeSha) {
      r.kind = "target";
    } else if (auto d = deployedAs.find(code); d != deployedAs.end()) {
      r.kind = "deployed";
      r.deployment = d->second;
    } else if (stored.count(code) != 0) {
      r.kind = "stored";
    } else {
      r.kind = "unknown";  // a hash nobody deployed (or not a code id at all)
    }
    snap.running.push_back(r);
  }
  std::sort(snap.running.begin(), snap.running.end(), [](const auto& a, const auto& b) {
    return a.devices != b.devices ? a.devices > b.devices : a.code < b.code;
  });

  for (const auto& [topic, payload] : *views) {
    fleet::Result<fleet::NodeRolloutView> v = fleet::decodeNodeRolloutView(payload);
    if (!v) {
      ++snap.ignored;
      continue;
    }
    if (target && v->group == group_ && v->deployment == target->number) {
      snap.nodes.push_back(std::move(v).value());
    }
  }

  const bool moving = snap.count("offered") + snap.count("transferring") > 0;
  snap.done = target && !moving && onlineOnTarget == snap.online;
  bool stopped = !snap.haltedBy().empty() || (target && target->paused);
  snap.settled = !target || (!moving && (onlineSettled == snap.online || stopped));
  return true;
}

std::string shortCode(const std::string& code) {
  return code.size() > 16 ? code.substr(0, 12) : code;
}

std::string percent(double pct) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g%%", pct);
  return buf;
}

std::string runningLabel(const RunningCode& r) {
  if (r.kind == "target") return "the target";
  if (r.kind == "deployed") return "deployment " + std::to_string(r.deployment);
  if (r.kind == "stored") return "a stored version (not deployed to this group)";
  if (r.kind == "unknown") return "unknown version (nobody deployed it)";
  return "not known (offline, no state)";
}

void printText(std::ostream& out, const std::string& group, const Snapshot& snap) {
  if (!snap.deployment) {
    out << "group " << group << ": no deployment yet (" << snap.devices << " devices, "
        << snap.online << " online)\n";
  } else {
    const storage::Deployment& d = *snap.deployment;
    out << "group " << group << ": deployment " << d.number << " of " << d.codeSha << " ("
        << d.codeSize << " bytes), stages " << stagesText(d.policy.stages);
    if (d.policy.maxConcurrent > 0) out << ", max " << d.policy.maxConcurrent << " per node";
    if (d.policy.haltFailuresPct < 100)
      out << ", halts above " << percent(d.policy.haltFailuresPct);
    if (d.paused) out << ", PAUSED";
    if (d.resume > 0) out << ", resumed " << d.resume << "x";
    std::vector<std::string> halted = snap.haltedBy();
    if (!halted.empty()) {
      out << ", HALTED by";
      for (const auto& n : halted) out << " " << n;
    }
    out << "\n";
    out << "  devices:  " << snap.devices << " in the group, " << snap.online << " online\n";
    out << "  rollout: ";
    for (const char* state : kCountedStates) out << " " << state << " " << snap.count(state);
    out << "\n";
  }
  if (!snap.running.empty()) {
    out << "  running:\n";
    for (const RunningCode& r : snap.running) {
      char count[32];
      std::snprintf(count, sizeof count, "%6lld", static_cast<long long>(r.devices));
      out << "    " << count << "  " << (r.code.empty() ? "-" : shortCode(r.code)) << "  "
          << runningLabel(r) << " (" << r.online << " online)\n";
    }
  }
  if (!snap.nodes.empty()) {
    out << "  nodes:\n";
    for (const fleet::NodeRolloutView& n : snap.nodes) {
      out << "    " << n.node << ": stage " << n.stage + 1;
      if (snap.deployment) out << "/" << snap.deployment->policy.stages.size();
      out << ", " << n.transfers << " transfers, " << n.queued << " queued"
          << (n.halted ? ", halted" : "") << (n.paused ? ", paused" : "") << "\n";
    }
  }
  if (!snap.failures.empty()) {
    out << "  failures (" << snap.failures.size() << "):\n";
    for (std::size_t i = 0; i < snap.failures.size() && i < kFailuresShown; ++i) {
      const fleet::DeviceCodeState& f = snap.failures[i];
      out << "    " << f.device << ": " << (f.reason.empty() ? "(no reason)" : f.reason) << " (on "
          << f.node << ", " << utcTime(f.atMs) << ")\n";
    }
    if (snap.failures.size() > kFailuresShown) {
      out << "    ... and " << snap.failures.size() - kFailuresShown
          << " more (--json lists all)\n";
    }
  }
  if (snap.unknownDevices > 0) {
    out << "  unknown devices: " << snap.unknownDevices
        << " (states of devices the registry does not know; not counted)\n";
  }
  if (snap.ignored > 0) {
    out << "  ignored: " << snap.ignored << " retained messages that are not valid states\n";
  }
}

nlohmann::json toJson(const std::string& group, const Snapshot& snap) {
  nlohmann::json out;
  out["group"] = group;
  if (snap.deployment) {
    const storage::Deployment& d = *snap.deployment;
    out["deployment"] = {{"number", d.number},
                         {"code", d.codeSha},
                         {"size", d.codeSize},
                         {"stages", d.policy.stages},
                         {"max_concurrent", d.policy.maxConcurrent},
                         {"halt_failures", d.policy.haltFailuresPct},
                         {"paused", d.paused},
                         {"resume", d.resume},
                         {"min_supported", d.minSupported},
                         {"created_at", d.createdAtMs},
                         {"author", d.author},
                         {"note", d.note}};
  } else {
    out["deployment"] = nullptr;
  }
  out["devices"] = snap.devices;
  out["online"] = snap.online;
  nlohmann::json states = nlohmann::json::object();
  for (const char* state : kCountedStates) states[state] = snap.count(state);
  out["states"] = states;
  nlohmann::json running = nlohmann::json::array();
  for (const RunningCode& r : snap.running) {
    nlohmann::json entry = {
        {"code", r.code}, {"version", r.kind}, {"devices", r.devices}, {"online", r.online}};
    if (r.kind == "deployed") entry["deployment"] = r.deployment;
    running.push_back(entry);
  }
  out["running"] = running;
  nlohmann::json failures = nlohmann::json::array();
  for (const auto& f : snap.failures) {
    failures.push_back({{"device", f.device},
                        {"reason", f.reason},
                        {"node", f.node},
                        {"resume", f.resume},
                        {"at", f.atMs}});
  }
  out["failures"] = failures;
  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& n : snap.nodes) {
    nodes.push_back({{"node", n.node},
                     {"stage", n.stage},
                     {"halted", n.halted},
                     {"paused", n.paused},
                     {"transfers", n.transfers},
                     {"queued", n.queued},
                     {"at", n.atMs}});
  }
  out["nodes"] = nodes;
  out["halted_by"] = snap.haltedBy();
  out["unknown_devices"] = snap.unknownDevices;
  out["recorded"] = snap.recorded;
  out["unrecorded"] = snap.unrecorded;
  out["ignored"] = snap.ignored;
  out["done"] = snap.done;
  return out;
}

// One line: "[#####.....] 120/200 finished  3 transferring  2 failed".
std::string progressLine(const Snapshot& snap) {
  constexpr int kWidth = 30;
  std::int64_t total = std::max<std::int64_t>(snap.devices, 1);
  int filled = static_cast<int>(std::min<std::int64_t>(snap.finished() * kWidth / total, kWidth));
  std::string line = "[" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "] ";
  line += std::to_string(snap.finished()) + "/" + std::to_string(snap.devices) + " finished, " +
          std::to_string(snap.count("transferring")) + " transferring, " +
          std::to_string(snap.count("offered")) + " offered, " +
          std::to_string(snap.count("failed")) + " failed, " +
          std::to_string(snap.count("pending")) + " pending";
  if (snap.deployment && snap.deployment->paused) line += " (paused)";
  if (!snap.haltedBy().empty()) line += " (HALTED)";
  return line;
}

volatile std::sig_atomic_t gInterrupted = 0;

extern "C" void onInterrupt(int) {
  gInterrupted = 1;
}

// Ctrl-C ends a --watch (the final status is still printed) instead of the process.
class InterruptGuard {
 public:
  InterruptGuard() {
    gInterrupted = 0;
    struct sigaction sa {};
    sa.sa_handler = onInterrupt;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_);
  }
  ~InterruptGuard() { ::sigaction(SIGINT, &old_, nullptr); }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  struct sigaction old_ {};
};

// Sleeps until `until`, waking early for Ctrl-C.
void pause(Clock::time_point until) {
  while (!gInterrupted && Clock::now() < until) {
    std::this_thread::sleep_for(
        std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(100)));
  }
}

}  // namespace

int runCodeStatus(const CommandContext& ctx, const CodeStatusArgs& args) {
  if (args.untilDoneSeconds < -1 || args.untilDoneSeconds > 7 * 24 * 3600) {
    return ctx.usage("--until-done takes a number of seconds (0 to 604800)");
  }
  std::string error;
  std::unique_ptr<RegistryHandle> registry = RegistryHandle::open(ctx, error);
  if (!registry) return ctx.fail(error);
  // The group first: a wrong name should not wait for a broker.
  storage::Result<bool> exists = registry->code().groupExists(args.group);
  if (!exists) return ctx.fail(registryError(exists.error()));
  if (!*exists) {
    return ctx.fail("group '" + args.group +
                    "' does not exist; `impctl group list` shows the groups");
  }
  std::unique_ptr<FleetBus> bus = connectBus(args.bus, error);
  if (!bus) return ctx.fail(error);
  StatusReader reader(ctx, *registry, *bus, args.group);
  Snapshot snap;
  std::int64_t recorded = 0;
  auto readOnce = [&]() {
    if (!reader.read(snap)) return false;
    recorded += snap.recorded;
    return true;
  };
  if (!readOnce()) return ctx.fail(reader.error());

  const bool untilDone = args.untilDoneSeconds >= 0;
  const bool tty = ::isatty(STDOUT_FILENO) == 1;
  bool timedOut = false;
  if (untilDone || args.watch) {
    InterruptGuard guard;
    const auto deadline = untilDone ? Clock::now() + std::chrono::seconds(args.untilDoneSeconds)
                                    : Clock::time_point::max();
    const bool drawBar = args.watch && tty && !args.json;
    std::string lastLine;
    if (untilDone && !snap.deployment) {
      return ctx.fail("group '" + args.group + "' has no deployment; nothing to wait for");
    }
    while (!gInterrupted) {
      if (untilDone ? snap.done : snap.settled) break;
      if (Clock::now() >= deadline) {
        timedOut = true;
        break;
      }
      if (args.watch && !args.json) {
        std::string line = progressLine(snap);
        if (drawBar) {
          ctx.out << "\r\033[K" << line << std::flush;
        } else if (line != lastLine) {
          ctx.out << line << "\n" << std::flush;
        }
        lastLine = line;
      }
      pause(std::min(deadline, Clock::now() + std::chrono::seconds(1)));
      if (gInterrupted) break;
      if (!readOnce()) {
        if (drawBar) ctx.out << "\n";
        return ctx.fail(reader.error());
      }
    }
    if (drawBar) ctx.out << "\r\033[K" << progressLine(snap) << "\n";
  }
  snap.recorded = recorded;
  for (const std::string& problem : reader.recordProblems()) {
    ctx.err << "impctl: warning: " << problem << "\n";
  }
  if (args.json) {
    ctx.out << toJson(args.group, snap).dump(2) << "\n";
  } else {
    printText(ctx.out, args.group, snap);
    if (recorded > 0) {
      ctx.out << "  recorded " << recorded << " new device states into the push history\n";
    }
  }
  if (timedOut) {
    return ctx.fail("deployment " + std::to_string(snap.deployment->number) + " of group '" +
                    args.group + "' is not done after " + std::to_string(args.untilDoneSeconds) +
                    " s (" + std::to_string(snap.count("offered") + snap.count("transferring")) +
                    " devices still offered or transferring, " + std::to_string(snap.online) +
                    " online)");
  }
  return kExitOk;
}

void CodeStatusCommand::add(CLI::App& code) {
  cmd = code.add_subcommand("status",
                            "where the group's latest deployment stands, from what the nodes "
                            "report (and record it in the push history)");
  cmd->add_option("--group", args.group, "the group")->required();
  cmd->add_flag("--json", args.json, "print one JSON object (docs/code-push.md)");
  cmd->add_flag("--watch", args.watch,
                "redraw a progress bar every second until the rollout settles (Ctrl-C stops)");
  cmd->add_option("--until-done", args.untilDoneSeconds,
                  "poll until no device is offered or transferring and every online device "
                  "runs the target; exit 1 if that takes more than SECONDS");
  addBusOptions(*cmd, args.bus);
}

std::optional<int> CodeStatusCommand::run(const CommandContext& ctx) {
  if (cmd->parsed()) return runCodeStatus(ctx, args);
  return std::nullopt;
}

}  // namespace impgate::impctl
