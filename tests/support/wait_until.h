// Polling with a deadline: how tests wait for something that happens on another thread or in
// another process, instead of sleeping for a guessed time.
#pragma once

#include <chrono>
#include <functional>

namespace impgate::testing {

// Calls `condition` every `step` until it returns true or `deadline` has passed; returns the
// last result. The condition is always evaluated at least once, and once more at the deadline.
bool waitUntil(const std::function<bool()>& condition, std::chrono::milliseconds deadline,
               std::chrono::milliseconds step = std::chrono::milliseconds(5));

}  // namespace impgate::testing
