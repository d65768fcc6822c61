#include "gateway/base/metrics/registry.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "gateway/base/metrics/text_format.h"

using impgate::metrics::Registry;
namespace text_format = impgate::metrics::text_format;

TEST_CASE("the registry renders the exposition format exactly") {
  Registry reg;
  auto& frames = reg.counter("impgate_frames_total", "Frames received from devices.");
  auto& devices = reg.gauge("impgate_devices", "Devices connected now.");
  auto& errors = reg.counterFamily("impgate_errors_total", "Errors by reason.", {"reason"});
  auto& tooLarge = errors.with("frame_too_large");
  auto& badHello = errors.with("bad_hello");
  auto& queued = reg.gaugeFamily("impgate_queue_depth", "Queued messages.", {"node", "dir"});

  frames.inc();
  frames.inc(41);
  devices.set(10);
  devices.sub(3);
  tooLarge.inc(2);
  badHello.inc();
  queued.with({"gw1", "out"}).add(-5);

  CHECK(reg.render() ==
        "# HELP impgate_frames_total Frames received from devices.\n"
        "# TYPE impgate_frames_total counter\n"
        "impgate_frames_total 42\n"
        "# HELP impgate_devices Devices connected now.\n"
        "# TYPE impgate_devices gauge\n"
        "impgate_devices 7\n"
        "# HELP impgate_errors_total Errors by reason.\n"
        "# TYPE impgate_errors_total counter\n"
        "impgate_errors_total{reason=\"frame_too_large\"} 2\n"
        "impgate_errors_total{reason=\"bad_hello\"} 1\n"
        "# HELP impgate_queue_depth Queued messages.\n"
        "# TYPE impgate_queue_depth gauge\n"
        "impgate_queue_depth{node=\"gw1\",dir=\"out\"} -5\n");
}

TEST_CASE("a family with no series yet renders only its HELP and TYPE") {
  Registry reg;
  reg.counterFamily("impgate_redirects_total", "Redirects.", {"reason"});
  CHECK(reg.render() ==
        "# HELP impgate_redirects_total Redirects.\n"
        "# TYPE impgate_redirects_total counter\n");
}

TEST_CASE("help text and label values are escaped") {
  Registry reg;
  reg.counterFamily("x_total", "back\\slash\nnewline \"quotes stay\"", {"v"})
      .with("a\"b\\c\nd")
      .inc();
  CHECK(reg.render() ==
        "# HELP x_total back\\\\slash\\nnewline \"quotes stay\"\n"
        "# TYPE x_total counter\n"
        "x_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST_CASE("registering a name again returns the same metric") {
  Registry reg;
  auto& a = reg.counter("impgate_a_total", "A.");
  auto& b = reg.counter("impgate_a_total", "A.");
  CHECK(&a == &b);
  auto& f = reg.counterFamily("impgate_e_total", "E.", {"reason"});
  CHECK(&f == &reg.counterFamily("impgate_e_total", "E.", {"reason"}));
  CHECK(&f.with("x") == &f.with("x"));
  CHECK(&f.with("x") != &f.with("y"));
}

TEST_CASE("metric and label names follow the Prometheus rules") {
  CHECK(text_format::isValidMetricName("impgate_errors_total"));
  CHECK(text_format::isValidMetricName("ns:sub_metric"));
  CHECK_FALSE(text_format::isValidMetricName(""));
  CHECK_FALSE(text_format::isValidMetricName("9lives"));
  CHECK_FALSE(text_format::isValidMetricName("has-dash"));
  CHECK(text_format::isValidLabelName("reason"));
  CHECK_FALSE(text_format::isValidLabelName("__reserved"));
  CHECK_FALSE(text_format::isValidLabelName("a:b"));
}

TEST_CASE("a family caps its series and folds the rest into 'other'") {
  Registry reg;
  auto& f = reg.counterFamily("impgate_capped_total", "Capped.", {"k"});
  for (std::size_t i = 0; i < impgate::metrics::CounterFamily::kMaxSeries; ++i) {
    f.with(std::to_string(i)).inc();
  }
  auto& over1 = f.with("one-too-many");
  auto& over2 = f.with("two-too-many");
  CHECK(&over1 == &over2);
  over1.inc();
  over2.inc();
  CHECK(reg.render().find("impgate_capped_total{k=\"other\"} 2\n") != std::string::npos);
}

TEST_CASE("concurrent increments are all counted") {
  Registry reg;
  auto& c = reg.counter("impgate_hot_total", "Hot path.");
  auto& g = reg.gauge("impgate_level", "Level.");
  auto& fam = reg.counterFamily("impgate_by_thread_total", "Per reason.", {"reason"});
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100000;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      // Every thread looks up the same series concurrently, then bumps it on the hot path.
      auto& shared = fam.with("shared");
      for (int i = 0; i < kPerThread; ++i) {
        c.inc();
        g.add();
        shared.inc();
      }
      g.sub(kPerThread);
    });
  }
  // Scrapes while the counters move must be safe too.
  for (int i = 0; i < 50; ++i) CHECK_FALSE(reg.render().empty());
  for (auto& t : threads) t.join();
  CHECK(c.value() == uint64_t{kThreads} * kPerThread);
  CHECK(g.value() == 0);
  CHECK(fam.with("shared").value() == uint64_t{kThreads} * kPerThread);
}

TEST_CASE("a counter read by a function is rendered with its current value") {
  Registry reg;
  reg.counter("impgate_frames_total", "Frames.").inc();
  std::atomic<uint64_t> outside{7};
  reg.counterFunction("impgate_log_lines_dropped_total", "Log lines dropped.",
                      [&] { return outside.load(); });
  auto page = reg.render();
  CHECK(page.find("# HELP impgate_log_lines_dropped_total Log lines dropped.\n"
                  "# TYPE impgate_log_lines_dropped_total counter\n"
                  "impgate_log_lines_dropped_total 7\n") != std::string::npos);
  outside = 1234;
  CHECK(reg.render().find("impgate_log_lines_dropped_total 1234\n") != std::string::npos);
}
