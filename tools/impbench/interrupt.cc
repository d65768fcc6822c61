#include "tools/impbench/interrupt.h"

#include <csignal>

namespace impgate::bench {
namespace {

volatile std::sig_atomic_t gInterrupted = 0;

void onSignal(int) {
  gInterrupted = 1;
}

}  // namespace

void installInterruptHandler() {
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  // One-shot: the handler resets to the default, so a second Ctrl-C kills impbench.
  sa.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

bool interrupted() {
  return gInterrupted != 0;
}

}  // namespace impgate::bench
