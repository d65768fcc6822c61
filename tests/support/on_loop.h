// Runs a function on an EventLoop's thread from a test thread and hands back its result, with a
// deadline: how tests reach objects that belong to a loop running on another thread.
#pragma once

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <type_traits>

#include "gateway/base/net/event_loop.h"

namespace impgate::testing {

template <typename F>
std::invoke_result_t<F&> runOnLoop(net::EventLoop& loop, F f, std::chrono::milliseconds deadline) {
  using R = std::invoke_result_t<F&>;
  auto task = std::make_shared<std::packaged_task<R()>>(std::move(f));
  auto result = task->get_future();
  loop.post([task] { (*task)(); });
  REQUIRE(result.wait_for(deadline) == std::future_status::ready);
  return result.get();
}

}  // namespace impgate::testing
