// FlapDetector: notices a device that opens sessions again and again (two devices sharing one
// set of credentials replace each other forever, or a device stuck in a crash loop) and tells
// the gateway to refuse it for a while, as EMQX's flapping detection does.
//
// Owned by the Gateway and used on its reactor thread only. Times are the gateway's seconds
// (its loop clock), so tests drive it with a manual clock.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace impgate::gateway {

struct FlapPolicy {
  uint32_t windowSeconds = 60;  // sessions are counted over this window
  uint32_t maxSessions = 10;    // more than this many within the window is flapping
  uint32_t banSeconds = 60;     // how long a flapping device is refused
};

class FlapDetector {
 public:
  explicit FlapDetector(FlapPolicy policy) : policy_(policy) {}

  // A session of `device` is about to open at `now`. Returns 0 to let it open, or the seconds
  // the device remains refused. The session that crosses the limit starts the ban and is
  // refused itself.
  uint32_t admit(std::string_view device, uint32_t now);
  // True once when admit() has just started a ban (for the log line and the metric).
  bool banStarted() const { return banStarted_; }

  // Forgets devices whose window and ban are over; called by the gateway's sweep.
  void prune(uint32_t now);
  // Devices refused right now.
  std::size_t bannedCount(uint32_t now) const;
  std::size_t trackedCount() const { return devices_.size(); }

 private:
  struct Record {
    uint32_t windowStart = 0;
    uint32_t sessions = 0;
    uint32_t bannedUntil = 0;  // 0 when not banned
  };

  FlapPolicy policy_;
  std::unordered_map<std::string, Record> devices_;
  bool banStarted_ = false;
};

}  // namespace impgate::gateway
