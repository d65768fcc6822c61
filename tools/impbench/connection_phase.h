// One server's part of `impbench connections`: the steps that turn a server process and a pool
// of clients into ServerFigures. impgate and the mosquitto baseline go through the same steps,
// so their figures are measured the same way:
//
//   quiet           >= 1 s, until the server (and its bus) are idle; RSS and fds: the baseline
//   full wave       every client connects at the paced rate
//   settle          >= 0.3 s, until the server is idle again; its CPU from the start of the
//                   wave to here, divided by the connections made, is the cost per handshake
//   idle            every connection idle for --idle-seconds; RSS minus the baseline, divided
//                   by the connections, is the memory per idle connection
//   leave           every client leaves cleanly; waits until the server has closed them all
//   quiet           >= 0.5 s, until what leaving set off (presence, unsubscribes) is done
//   resumed wave    the same clients connect again, offering their TLS session tickets
//   settle, leave
//
// "Idle" means using less than 3 % of a core over 200 ms; only the measured processes count.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include "gateway/base/net/event_loop.h"
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
