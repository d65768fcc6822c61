#include "tools/impbench/connection_phase.h"

#include <cstdio>
#include <memory>

#include "tools/impbench/paced_starts.h"
#include "tools/impbench/process_stats.h"
#include "tools/impbench/progress.h"
#include "tools/impbench/step_runner.h"

namespace impgate::bench {
namespace {

using std::chrono::milliseconds;
using Seconds = StepRunner::Seconds;

constexpr milliseconds kQuietFirst{1000};
constexpr milliseconds kQuietBetween{500};
constexpr milliseconds kSettle{300};
constexpr Seconds kQuietWindow{0.2};
constexpr double kQuietShare = 0.03;
constexpr milliseconds kQuietGiveUp{30000};
// Past the time the ramp needs, a wave gets a minute, plus time for a server that completes
// only 50 connections a second: a saturated machine is reported, not mistaken for a hang.
constexpr milliseconds kWaveSlack{60000};
constexpr milliseconds kWaveSlackPerConnection{20};
constexpr milliseconds kLeaveDeadline{60000};
// Listing /proc/<pid>/fd costs milliseconds with 10k connections: not on every poll.
constexpr Seconds kFdPollInterval{0.05};
constexpr Seconds kProgressInterval{2.0};

// The state the steps share; lives for one runConnectionPhase call.
class Phase {
 public:
  Phase(net::EventLoop& loop, pid_t server, ClientPool& clients, const PhaseOptions& options,
        ServerFigures& out)
      : runner_(loop), server_(server), clients_(clients), options_(options), out_(out) {}

  std::string run() {
    addQuiet("quiet", kQuietFirst, [this] { takeSample(base_); });
    addWave("full wave", out_.full);
    addIdle();
    addLeave();
    if (options_.resumedWave) {
      addQuiet("quiet after leaving", kQuietBetween, nullptr);
      addWave("resumed wave", out_.resumed);
      addLeave();
    }
    return runner_.run();
  }

 private:
  bool takeSample(ProcessSample& into) {
    auto s = sampleProcess(server_);
    if (!s) {
      runner_.fail(options_.label + " (pid " + std::to_string(server_) + ") is gone");
      return false;
    }
    into = *s;
    return true;
  }

  // Waits at least `minimum`, then until the server (and its bus) use less than kQuietShare of
  // a core over a kQuietWindow: work a step set off, such as impgate's presence publishes after
  // every device left, is finished before the next measurement starts. Gives up waiting (with
  // a note) after kQuietGiveUp; a busy co-tenant does not matter, only the measured processes.
  void addQuiet(const std::string& name, milliseconds minimum, std::function<void()> atEnd) {
    runner_.add(
        {name, minimum + kQuietGiveUp + milliseconds(10000), [this] { quietMarkAt_.reset(); },
         [this, name, minimum, atEnd = std::move(atEnd)](Seconds elapsed) {
           auto now = cpuOfMeasured();
           if (!now) return false;
           if (!quietMarkAt_) {
             quietMark_ = *now;
             quietMarkAt_ = elapsed;
             return false;
           }
           Seconds window = elapsed - *quietMarkAt_;
           if (window < kQuietWindow) return false;
           auto limit = std::chrono::duration_cast<std::chrono::nanoseconds>(window * kQuietShare);
           bool quiet =
               now->first - quietMark_.first < limit && now->second - quietMark_.second < limit;
           quietMark_ = *now;
           quietMarkAt_ = elapsed;
           if (elapsed < minimum) return false;
           if (!quiet && elapsed < minimum + kQuietGiveUp) return false;
           if (!quiet) {
             progress("%s %s: still busy after %.0f s, going on", options_.label.c_str(),
                      name.c_str(), elapsed.count());
           } else if (elapsed > minimum + kQuietWindow * 2) {
             progress("%s %s: idle after %.1f s", options_.label.c_str(), name.c_str(),
                      elapsed.count());
           }
           if (atEnd) atEnd();
           return true;
         }});
  }

  // CPU so far of the server and of its bus (zero without one); nullopt (and the run fails)
  // when the server is gone.
  std::optional<std::pair<std::chrono::nanoseconds, std::chrono::nanoseconds>> cpuOfMeasured() {
    ProcessSample server;
    if (!takeSample(server)) return std::nullopt;
    std::chrono::nanoseconds bus{0};
    if (options_.bus > 0) {
      if (auto b = sampleProcess(options_.bus)) bus = b->cpu;
    }
    return std::make_pair(server.cpu, bus);
  }

  void addWave(const std::string& name, std::optional<HandshakeFigures>& figures) {
    auto rampTime = milliseconds(static_cast<long>(1000.0 * clients_.size() / options_.rate));
    runner_.add(
        {name, rampTime + kWaveSlack + kWaveSlackPerConnection * static_cast<long>(clients_.size()),
         [this, &figures] {
           clients_.startWave();
           figures = HandshakeFigures{};
           figures->attempted = clients_.size();
           pacing_ = std::make_unique<PacedStarts>(clients_.size(), options_.rate,
                                                   [this](std::size_t i) { clients_.connect(i); });
           lastProgress_ = Seconds(0);
           takeSample(waveStart_);
           if (options_.bus > 0) busAtWaveStart_ = sampleProcess(options_.bus);
         },
         [this, name, &figures](Seconds elapsed) {
           pacing_->advance(elapsed.count());
           const WaveCounts& c = clients_.counts();
           copyCounts(c, *figures);
           figures->seconds = elapsed.count();
           std::size_t done = c.established + c.failed;
           if (pacing_->started() > done) {
             figures->maxInFlight = std::max(figures->maxInFlight, pacing_->started() - done);
           }
           bool settled = pacing_->allStarted() && done == clients_.size();
           if (settled || elapsed - lastProgress_ >= kProgressInterval) {
             lastProgress_ = elapsed;
             progress(
                 "%s %s: %.1f s, %zu started, %zu connected "
                 "(%zu resumed), %zu failed; at most %zu in flight",
                 options_.label.c_str(), name.c_str(), elapsed.count(), pacing_->started(),
                 c.established, c.resumed, c.failed, figures->maxInFlight);
           }
           return settled;
         }});
    addQuiet("settle after " + name, kSettle, [this, &figures] {
      ProcessSample end;
      if (!takeSample(end)) return;
      copyCounts(clients_.counts(), *figures);
      figures->serverCpuSeconds = Seconds(end.cpu - waveStart_.cpu).count();
      figures->serverCpuTickSeconds = ticksToSeconds(end.cpuTicks - waveStart_.cpuTicks);
      figures->serverMainThreadCpuSeconds =
          Seconds(end.mainThreadCpu - waveStart_.mainThreadCpu).count();
      if (options_.bus > 0) {
        auto busEnd = sampleProcess(options_.bus);
        if (busAtWaveStart_ && busEnd) {
          figures->busCpuSeconds = Seconds(busEnd->cpu - busAtWaveStart_->cpu).count();
        }
      }
    });
  }

  void addIdle() {
    auto length = options_.idle;
    runner_.add({"idle", length + milliseconds(10000), [this] { takeSample(idleStart_); },
                 [this, length](Seconds elapsed) {
                   if (elapsed < length) return false;
                   ProcessSample end;
                   if (!takeSample(end)) return false;
                   MemoryFigures m;
                   m.connections = clients_.counts().established;
                   m.rssBeforeKiB = base_.rssKiB;
                   m.rssAfterKiB = end.rssKiB;
                   m.anonBeforeKiB = base_.rssAnonKiB;
                   m.anonAfterKiB = end.rssAnonKiB;
                   m.idleCpuUsPerSecond =
                       std::chrono::duration<double, std::micro>(end.cpu - idleStart_.cpu).count() /
                       elapsed.count();
                   out_.memory = m;
                   return true;
                 }});
  }

  // Every client leaves; done when the server holds no more descriptors than before the wave.
  void addLeave() {
    runner_.add({"leave", kLeaveDeadline,
                 [this] {
                   progress("%s: every client leaves", options_.label.c_str());
                   clients_.disconnectAll();
                   lastFdPoll_ = Seconds(-1);
                 },
                 [this](Seconds elapsed) {
                   if (elapsed - lastFdPoll_ < kFdPollInterval) return false;
                   lastFdPoll_ = elapsed;
                   ProcessSample now;
                   if (!takeSample(now)) return false;
                   return now.fds <= base_.fds;
                 }});
  }

  static void copyCounts(const WaveCounts& c, HandshakeFigures& f) {
    f.completed = c.established;
    f.resumed = c.resumed;
    f.failed = c.failed;
    f.lastFailure = c.lastFailure;
  }

  StepRunner runner_;
  pid_t server_;
  ClientPool& clients_;
  const PhaseOptions& options_;
  ServerFigures& out_;
  std::unique_ptr<PacedStarts> pacing_;
  ProcessSample base_;
  ProcessSample waveStart_;
  std::optional<ProcessSample> busAtWaveStart_;
  std::pair<std::chrono::nanoseconds, std::chrono::nanoseconds> quietMark_;
  std::optional<Seconds> quietMarkAt_;
  ProcessSample idleStart_;
  Seconds lastProgress_{0};
  Seconds lastFdPoll_{0};
};

}  // namespace

void runConnectionPhase(net::EventLoop& loop, pid_t server, ClientPool& clients,
                        const PhaseOptions& options, ServerFigures& out) {
  Phase phase(loop, server, clients, options, out);
  out.error = phase.run();
}

}  // namespace impgate::bench
