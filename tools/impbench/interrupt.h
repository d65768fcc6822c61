// Ctrl-C for a benchmark run. The first SIGINT or SIGTERM only sets a flag; every wait and load
// loop in impbench polls it, so the run unwinds normally and stops the servers it started and
// removes its temp dirs. A second signal ends impbench at once (its children still get SIGTERM
// through their parent-death signal).
#pragma once

namespace impgate::bench {

// Installs the handlers (once, at start-up) and ignores SIGPIPE.
void installInterruptHandler();
// True once SIGINT or SIGTERM has arrived.
bool interrupted();

}  // namespace impgate::bench
