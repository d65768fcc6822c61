// A set of benchmark clients of one kind (imp devices, MQTT clients), all on one EventLoop and
// driven in waves: every client connects, the set sits idle, every client leaves. The counts
// describe the current wave; each client is in at most one of "established" and "failed", so
// a wave is settled when the two add up to the number started.
#pragma once

#include <cstddef>
#include <string>

namespace impgate::bench {

// The outcome of the current wave so far.
struct WaveCounts {
  std::size_t established = 0;  // connected and past the protocol's greeting (WELCOME, CONNACK)
  std::size_t resumed = 0;      // of those, how many resumed a TLS session
  std::size_t failed = 0;       // failed to connect, or dropped after connecting
  std::string lastFailure;      // the reason of the latest failure, for the report
};

class ClientPool {
 public:
  virtual ~ClientPool() = default;
  virtual std::size_t size() const = 0;
  // Zeroes the counts before a wave.
  virtual void startWave() = 0;
  // Starts connecting client `index`; the outcome shows in counts().
  virtual void connect(std::size_t index) = 0;
  // Every client leaves cleanly, now (protocol goodbye, TLS close_notify, close). Not counted
  // as failures. The clients keep what they need to resume their TLS sessions next wave.
  virtual void disconnectAll() = 0;
  virtual const WaveCounts& counts() const = 0;
};

}  // namespace impgate::bench
