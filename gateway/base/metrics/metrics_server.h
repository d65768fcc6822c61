// Serves a Registry as `GET /metrics` over plain HTTP/1.1 for Prometheus to scrape.
//
// One small thread runs a poll(2) loop over the listening socket and a bounded set of client
// connections, all non-blocking, each with a deadline: a slow or silent client is dropped when
// its time is up and never holds up another scrape or anything that updates metrics. Requests
// are bounded (8 KiB of head); each response is buffered and written as the client takes it.
// At the connection cap a new connection is admitted by closing the one worth least (one that
// has its answer, else the oldest still sending its request), so idle or slowloris clients can
// never lock a scraper out. Every response closes the connection. Other paths get 404, other
// methods 405.
//
// Bind it to loopback or a management network: there is no authentication. The server reads
// the registry; the registry must outlive it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "gateway/base/metrics/result.h"

#include "gateway/base/metrics/registry.h"

namespace impgate::metrics {

class MetricsServer {
 public:
  struct Options {
    std::string host = "127.0.0.1";  // an address or name; empty binds every address
    uint16_t port = 0;               // 0: an ephemeral port, see port()
    // Time a client has to send its request and read the response.
    std::chrono::milliseconds clientTimeout{5000};
    // Connections held at most; a new one beyond this closes the oldest idle one (see above).
    std::size_t maxClients = 16;
  };

  MetricsServer(const Registry& registry, Options options);
  ~MetricsServer();  // stop()
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds, listens and starts the serving thread. On failure says why (bad address, port in
  // use) and logs it.
  Status start();
  // The bound port once start() has succeeded (the real one when Options::port was 0).
  uint16_t port() const { return port_; }
  // Stops the thread and closes every socket; returns promptly even with clients connected.
  // Idempotent.
  void stop();

 private:
  void run();

  const Registry& registry_;
  const Options opts_;
  int listenFd_ = -1;
  int wakeFd_ = -1;  // eventfd: stop() wakes the loop through it
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace impgate::metrics
