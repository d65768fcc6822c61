// One server's part of `impbench connections`: the steps that turn a server process and a pool
// of clients into ServerFigures. impgate and the mosquitto baseline go through the same steps,
// so their figures are measured the same way:
//
//   quiet 1 s           the freshly started server settles; its RSS and fds are the baseline
//   full wave           every client connects at the paced rate; the server's CPU is sampled
//   settle 0.3 s          before the first connect and after the wave settled plus this pause
//   idle                every connection idle; the RSS then, minus the baseline, per connection
//   leave               every client leaves cleanly; waits until the server has closed them all
//   quiet 0.5 s
//   resumed wave        the same clients connect again, offering their TLS session tickets
//   settle 0.3 s
//   leave
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include "gateway/net/event_loop.h"
#include "tools/impbench/bench_report.h"
#include "tools/impbench/client_pool.h"

namespace impgate::bench {

// How the steps run for one server.
struct PhaseOptions {
  std::string label;   // "impgate", "mosquitto": prefix of progress lines
  double rate = 1000;  // connections started per second
  std::chrono::milliseconds idle{2000};
  bool resumedWave = true;
  pid_t bus = -1;  // a broker whose CPU over each wave is reported too (impgate's bus)
};

// Runs the steps on `loop`, which must not have run before (an EventLoop runs once). Fills
// out.full, out.resumed and out.memory as far as the steps got, and out.error when one failed.
void runConnectionPhase(net::EventLoop& loop, pid_t server, ClientPool& clients,
                        const PhaseOptions& options, ServerFigures& out);

}  // namespace impgate::bench
