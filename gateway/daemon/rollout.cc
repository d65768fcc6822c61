#include "gateway/daemon/rollout.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace impgate::gateway {
Rollout::Rollout(uint32_t deployment, RolloutPolicy policy)
    : deployment_(deployment), policy_(std::move(policy)) {
  if (policy_.stages.empty()) policy_.stages = {100};
}

void Rollout::updatePolicy(const RolloutPolicy& policy) {
  const bool resumed = policy.resume > policy_.resume;
  policy_ = policy;
  if (policy_.stages.empty()) policy_.stages = {100};
  if (resumed) {
    // Failures before the resume no longer count: recount under the new resume.
    halted_ = false;
    counts_ = {};
    for (const auto& [device, e] : devices_) count(e, 1);
  }
  checkHalt();
}

void Rollout::count(const Entry& e, int delta) {
  auto add = [delta](uint32_t& n) { n = static_cast<uint32_t>(static_cast<int64_t>(n) + delta); };
  switch (e.state) {
    case CodeState::kCurrent:
      add(counts_.current);
      break;
    case CodeState::kOffered:
      add(counts_.offered);
      break;
    case CodeState::kTransferring:
      add(counts_.transferring);
      break;
    case CodeState::kInstalled:
      add(counts_.installed);
      break;
    case CodeState::kDeferred:
      add(counts_.deferred);
      break;
    case CodeState::kFailed:
      add(failedNow(e) ? counts_.failed : counts_.failedBefore);
      break;
  }
}

void Rollout::record(std::string_view device, CodeState state, uint32_t resume) {
  Entry next{state, resume};
  auto it = devices_.find(std::string(device));
  if (it == devices_.end()) {
    it = devices_.emplace(std::string(device), next).first;
  } else {
    count(it->second, -1);
    it->second = next;
  }
  count(it->second, 1);
  checkHalt();
}

const CodeState* Rollout::stateOf(std::string_view device) const {
  auto it = devices_.find(std::string(device));
  return it == devices_.end() ? nullptr : &it->second.state;
}

bool Rollout::eligible(std::string_view device) const {
  auto it = devices_.find(std::string(device));
  if (it == devices_.end()) return true;
  switch (it->second.state) {
    case CodeState::kCurrent:
    case CodeState::kInstalled:
      return false;
    case CodeState::kFailed:
      return !failedNow(it->second);
    case CodeState::kOffered:
    case CodeState::kTransferring:
    case CodeState::kDeferred:
      return true;
  }
  return false;
}

uint32_t Rollout::finished() const {
  return counts_.current + counts_.installed + counts_.deferred + counts_.failed;
}

uint32_t Rollout::started() const {
  return finished() + counts_.offered + counts_.transferring;
}

uint32_t Rollout::stageTarget(std::size_t stage) const {
  int pct = policy_.stages.at(stage);
  if (pct >= 100) return std::numeric_limits<uint32_t>::max();
  return static_cast<uint32_t>(std::ceil(pct * static_cast<double>(policy_.devices) / 100.0));
}

std::size_t Rollout::currentStage() const {
  const uint32_t done = finished();
  for (std::size_t k = 0; k + 1 < policy_.stages.size(); ++k) {
    if (done < stageTarget(k)) return k;
  }
  return policy_.stages.size() - 1;
}

bool Rollout::mayStart() const {
  if (policy_.paused || halted_) return false;
  return started() < stageTarget(currentStage());
}

void Rollout::checkHalt() {
  if (halted_ || counts_.failed == 0) return;
  // Failures among the devices that ran the update (installed or failed since the last
  // resume), once at least the first stage's worth (at most a tenth of the group) has: the
  // rule of an AWS IoT job's abort threshold. It does not depend on which node's results
  // arrive first, so every node comes to the same answer.
  const uint32_t executed = counts_.installed + counts_.failed;
  const uint32_t tenth = std::max<uint32_t>(1, (policy_.devices + 9) / 10);
  const uint32_t minimum = std::max<uint32_t>(1, std::min(stageTarget(0), tenth));
  if (executed < minimum) return;
  if (counts_.failed * 100.0 > policy_.haltFailuresPct * executed) halted_ = true;
}

}  // namespace impgate::gateway
