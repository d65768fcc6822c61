// Rollout: one group's current deployment as this node sees it, and the pacing rules that decide
// whether the node may start one more transfer (docs/code-push.md, "Rollouts").
//
// There is no coordinator. Every node hears every device's code state from the bus (retained
// <prefix>/dev/<id>/code, published by the node the device is on) and applies the same rules to
// the same counts, so the nodes agree on the current stage and on a halt without talking to
// each other. Counts may lag by the broker's round trip, so a stage can overshoot its target by
// what the nodes start within that time; halting is sticky per node until the operator resumes.
//
// Pure logic, no I/O: the CodePush glue feeds it states and asks it questions. Reactor thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bus/fleet/descriptors.h"

namespace impgate::gateway {

// Where one device stands in a deployment (current, offered, transferring, installed, deferred,
// failed): the states of the bus contract.
using bus::fleet::CodeState;

struct RolloutPolicy {
  std::vector<int> stages{100};  // percentages of the group, increasing, the last one 100
  uint32_t maxConcurrent = 0;    // transfers at once on each node; 0 = unbounded
  double haltFailuresPct = 100;  // halt once failures exceed this share of the devices that ran it
  uint32_t devices = 0;          // the group's size when the deployment was made
  bool paused = false;
  uint32_t resume = 0;  // how many times the operator resumed it
};

class Rollout {
 public:
  Rollout(uint32_t deployment, RolloutPolicy policy);

  uint32_t deployment() const { return deployment_; }
  const RolloutPolicy& policy() const { return policy_; }
  // A newer descriptor of the same deployment (pause, resume). A higher `resume` lifts a halt
  // and makes the devices that failed before it eligible again.
  void updatePolicy(const RolloutPolicy& policy);

  // A device's state in this deployment, from the bus or from this node. `resume` is the
  // policy's resume count the state was reached under.
  void record(std::string_view device, CodeState state, uint32_t resume);
  // The device's last recorded state, if any.
  const CodeState* stateOf(std::string_view device) const;
  // The device may be offered the code: it has no state yet, or it deferred, or it failed
  // before the last resume, or its offer is still open (offered, transferring: offered again
  // after a reconnect). Not when it installed, is current, or failed since the last resume.
  bool eligible(std::string_view device) const;
  // Starting one more device now keeps within the current stage, and the rollout is neither
  // paused nor halted. Devices whose offer is still open do not need it to be offered again.
  bool mayStart() const;
  // The stage (index into policy().stages) the rollout is in.
  std::size_t currentStage() const;
  // Devices the stage allows, started or finished; UINT32_MAX for a stage of 100 %.
  uint32_t stageTarget(std::size_t stage) const;
  bool halted() const { return halted_; }
  bool paused() const { return policy_.paused; }

  struct Counts {
    uint32_t current = 0, offered = 0, transferring = 0, installed = 0, deferred = 0;
    uint32_t failed = 0;        // since the last resume
    uint32_t failedBefore = 0;  // before the last resume (eligible again)
  };
  const Counts& counts() const { return counts_; }
  // finished = current + installed + deferred + failed; started = finished + open offers.
  uint32_t finished() const;
  uint32_t started() const;

 private:
  struct Entry {
    CodeState state;
    uint32_t resume;
  };
  void count(const Entry& e, int delta);
  bool failedNow(const Entry& e) const {
    return e.state == CodeState::kFailed && e.resume >= policy_.resume;
  }
  void checkHalt();

  uint32_t deployment_;
  RolloutPolicy policy_;
  std::unordered_map<std::string, Entry> devices_;
  Counts counts_;
  bool halted_ = false;
};

}  // namespace impgate::gateway
