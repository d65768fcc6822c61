#include "tests/support/wait_until.h"

#include <thread>

namespace impgate::testing {

bool waitUntil(const std::function<bool()>& condition, std::chrono::milliseconds deadline,
               std::chrono::milliseconds step) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (!condition()) {
    auto now = std::chrono::steady_clock::now();
    if (now >= end) return false;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(step, end - now));
  }
  return true;
}

}  // namespace impgate::testing
