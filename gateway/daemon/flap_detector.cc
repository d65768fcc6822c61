#include "gateway/daemon/flap_detector.h"

namespace impgate::gateway {

uint32_t FlapDetector::admit(std::string_view device, uint32_t now) {
  banStarted_ = false;
  auto [it, inserted] = devices_.try_emplace(std::string(device));
  Record& r = it->second;
  if (r.bannedUntil != 0) {
    if (now < r.bannedUntil) return r.bannedUntil - now;
    r = Record{};  // the ban is over: a fresh window
  }
  if (inserted || now - r.windowStart >= policy_.windowSeconds) {
    r.windowStart = now;
    r.sessions = 0;
  }
  if (++r.sessions <= policy_.maxSessions) return 0;
  r.bannedUntil = now + policy_.banSeconds;
  banStarted_ = true;
  return policy_.banSeconds;
}

void FlapDetector::prune(uint32_t now) {
  for (auto it = devices_.begin(); it != devices_.end();) {
    const Record& r = it->second;
    bool banOver = r.bannedUntil == 0 || now >= r.bannedUntil;
    bool windowOver = now - r.windowStart >= policy_.windowSeconds;
    it = banOver && windowOver ? devices_.erase(it) : std::next(it);
  }
}

std::size_t FlapDetector::bannedCount(uint32_t now) const {
  std::size_t n = 0;
  for (const auto& [id, r] : devices_) {
    if (r.bannedUntil != 0 && now < r.bannedUntil) ++n;
  }
  return n;
}

}  // namespace impgate::gateway
