#include "gateway/daemon/rollout.h"

#include <catch2/catch.hpp>
#include <limits>
#include <string>

using impgate::bus::fleet::CodeState;
using impgate::gateway::Rollout;
using impgate::gateway::RolloutPolicy;

namespace {

RolloutPolicy staged(std::vector<int> stages, uint32_t devices, double haltPct = 100) {
  RolloutPolicy p;
  p.stages = std::move(stages);
  p.devices = devices;
  p.haltFailuresPct = haltPct;
  return p;
}

std::string dev(int i) {
  return "d" + std::to_string(i);
}

// Starts devices [from, to) as this node would: offer while mayStart().
int startWhileAllowed(Rollout& r, int from, int to) {
  int started = 0;
  for (int i = from; i < to && r.mayStart(); ++i) {
    r.record(dev(i), CodeState::kOffered, r.policy().resume);
    ++started;
  }
  return started;
}

}  // namespace

TEST_CASE("a stage holds starts at its share of the group until it has finished", "[rollout]") {
  Rollout r(1, staged({10, 100}, 200));
  CHECK(r.stageTarget(0) == 20);
  CHECK(r.stageTarget(1) == std::numeric_limits<uint32_t>::max());
  CHECK(startWhileAllowed(r, 0, 200) == 20);
  CHECK(r.currentStage() == 0);
  // 19 of 20 finished: the stage is still open, nothing more starts.
  for (int i = 0; i < 19; ++i) r.record(dev(i), CodeState::kInstalled, 0);
  CHECK(r.currentStage() == 0);
  CHECK_FALSE(r.mayStart());
  r.record(dev(19), CodeState::kInstalled, 0);
  CHECK(r.currentStage() == 1);
  CHECK(startWhileAllowed(r, 20, 200) == 180);
  CHECK(r.started() == 200);
}

TEST_CASE("devices already on the target count toward their stage", "[rollout]") {
  Rollout r(3, staged({50, 100}, 10));
  for (int i = 0; i < 5; ++i) r.record(dev(i), CodeState::kCurrent, 0);
  CHECK(r.currentStage() == 1);
  CHECK_FALSE(r.eligible(dev(0)));
  CHECK(r.eligible(dev(7)));
}

TEST_CASE(
    "failures past the threshold of the devices that ran it halt the rollout until a "
    "resume",
    "[rollout]") {
  Rollout r(2, staged({10, 100}, 200, 5.0));  // judged once 20 (the first stage) have run it
  startWhileAllowed(r, 0, 20);
  r.record(dev(0), CodeState::kFailed, 0);
  r.record(dev(1), CodeState::kFailed, 0);
  CHECK_FALSE(r.halted());  // 2 of 2 failed, but too few have run it to judge
  for (int i = 2; i < 19; ++i) r.record(dev(i), CodeState::kInstalled, 0);
  CHECK_FALSE(r.halted());
  r.record(dev(19), CodeState::kInstalled, 0);  // 20 ran it, 2 failed: 10 % > 5 %
  CHECK(r.halted());
  CHECK_FALSE(r.mayStart());
  CHECK_FALSE(r.eligible(dev(0)));

  RolloutPolicy resumed = r.policy();
  resumed.resume = 1;
  r.updatePolicy(resumed);
  CHECK_FALSE(r.halted());
  CHECK(r.counts().failed == 0);
  CHECK(r.counts().failedBefore == 2);
  CHECK(r.eligible(dev(0)));  // failed before the resume: offered again
  CHECK(r.mayStart());
  // A failure after the resume counts again.
  r.record(dev(0), CodeState::kFailed, 1);
  CHECK(r.counts().failed == 1);
  CHECK_FALSE(r.eligible(dev(0)));
}

TEST_CASE("the halt does not depend on the order in which results arrive", "[rollout]") {
  // Two nodes' results interleave differently on each node; both must halt.
  for (bool failuresFirst : {true, false}) {
    Rollout r(2, staged({10, 100}, 200, 5.0));
    auto installs = [&] {
      for (int i = 3; i < 40; ++i) r.record(dev(i), CodeState::kInstalled, 0);
    };
    auto failures = [&] {
      for (int i = 0; i < 3; ++i) r.record(dev(i), CodeState::kFailed, 0);
    };
    if (failuresFirst) {
      failures();
      installs();
    } else {
      installs();
      failures();
    }
    INFO("failures first: " << failuresFirst);
    CHECK(r.halted());  // 3 of 40 = 7.5 %
  }
}

TEST_CASE("a few failures among many do not halt", "[rollout]") {
  Rollout r(1, staged({100}, 200, 5.0));
  for (int i = 0; i < 100; ++i) r.record(dev(i), CodeState::kInstalled, 0);
  for (int i = 100; i < 105; ++i) r.record(dev(i), CodeState::kFailed, 0);
  CHECK_FALSE(r.halted());  // 5 of 105
  r.record(dev(105), CodeState::kFailed, 0);
  CHECK(r.halted());  // 6 of 106 > 5 %
}

TEST_CASE("a paused rollout starts nothing; open offers stay eligible", "[rollout]") {
  Rollout r(1, staged({100}, 4));
  r.record(dev(0), CodeState::kTransferring, 0);
  RolloutPolicy p = r.policy();
  p.paused = true;
  r.updatePolicy(p);
  CHECK_FALSE(r.mayStart());
  CHECK(r.eligible(dev(0)));
  CHECK(r.eligible(dev(1)));
  p.paused = false;
  r.updatePolicy(p);
  CHECK(r.mayStart());
}

TEST_CASE("a state recorded again replaces the device's previous one in the counts", "[rollout]") {
  Rollout r(1, staged({100}, 3));
  r.record(dev(0), CodeState::kOffered, 0);
  r.record(dev(0), CodeState::kTransferring, 0);
  r.record(dev(0), CodeState::kInstalled, 0);
  r.record(dev(0), CodeState::kInstalled, 0);
  CHECK(r.counts().installed == 1);
  CHECK(r.counts().offered == 0);
  CHECK(r.counts().transferring == 0);
  CHECK(r.started() == 1);
  r.record(dev(1), CodeState::kDeferred, 0);
  CHECK(r.eligible(dev(1)));
  CHECK(r.finished() == 2);
}
