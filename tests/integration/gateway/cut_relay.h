// CutRelay: a TCP relay on loopback between a device and a gateway that cuts its first
// connection after a number of bytes have flowed from the gateway to the device, as a link that
// drops in the middle of a transfer. Later connections are relayed whole.
//
// One thread relays every connection with poll(2); the destructor stops it and closes
// everything. The TLS session runs end to end through it: it sees only ciphertext.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

namespace impgate::testing {

class CutRelay {
 public:
  // Relays 127.0.0.1:port() to 127.0.0.1:`target`.
  CutRelay(uint16_t target, uint64_t cutAfterDownstreamBytes);
  ~CutRelay();
  CutRelay(const CutRelay&) = delete;
  CutRelay& operator=(const CutRelay&) = delete;

  uint16_t port() const { return port_; }
  // The first connection has been cut.
  bool cut() const { return cut_.load(); }

 private:
  void run();

  uint16_t target_;
  uint64_t cutAfter_;
  uint16_t port_ = 0;
  int listenFd_ = -1;
  int stopFd_ = -1;  // eventfd
  std::atomic<bool> cut_{false};
  std::thread thread_;
};

}  // namespace impgate::testing
