// What the kernel says a process costs: CPU time, resident memory and open descriptors, read
// from /proc. impbench samples the server it measures before and after a phase and divides the
// difference by the number of connections.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>

namespace impgate::bench {

// One reading of a process.
struct ProcessSample {
  // On-CPU time of every live thread, summed from /proc/<pid>/task/*/schedstat (nanosecond
  // precision). Threads that have exited are missing; the servers measured keep theirs.
  std::chrono::nanoseconds cpu{0};
  // The same for the main thread alone (tid == pid): impgate's reactor, mosquitto's only thread.
  std::chrono::nanoseconds mainThreadCpu{0};
  // utime + stime from /proc/<pid>/stat, in clock ticks (usually 10 ms): coarse, but it also
  // counts exited threads. Kept as a cross-check of `cpu`.
  uint64_t cpuTicks = 0;
  uint64_t rssKiB = 0;      // VmRSS
  uint64_t rssAnonKiB = 0;  // RssAnon: the heap and stacks, without mapped files
  uint64_t fds = 0;         // entries in /proc/<pid>/fd
};

// Reads `pid`; nullopt when the process is gone or /proc is unreadable.
std::optional<ProcessSample> sampleProcess(pid_t pid);

// Clock ticks to seconds (sysconf(_SC_CLK_TCK)).
double ticksToSeconds(uint64_t ticks);

// The calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID).
std::chrono::nanoseconds threadCpuTime();

}  // namespace impgate::bench
