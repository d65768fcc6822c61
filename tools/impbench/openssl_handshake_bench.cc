#include "tools/impbench/openssl_handshake_bench.h"

#include <malloc.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <vector>

#include "gateway/base/net/tls_context.h"
#include "tools/impbench/interrupt.h"
#include "tools/impbench/process_stats.h"

namespace impgate::bench {
namespace {

using std::chrono::nanoseconds;

// A handshake that has not finished after this many round trips is broken, not slow.
constexpr int kMaxRounds = 32;
constexpr std::size_t kWarmup = 20;

// CPU spent by each side of the handshakes so far.
struct SideTimes {
  nanoseconds server{0};
  nanoseconds client{0};
};

// Runs `call` and charges its thread CPU time to `into`.
template <typename F>
auto timed(nanoseconds& into, F&& call) {
  auto start = threadCpuTime();
  auto result = call();
  into += threadCpuTime() - start;
  return result;
}

// Bytes malloc has handed out and not had back, over every arena.
std::size_t heapInUse() {
  struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
}

bool wantsMore(SSL* ssl, int ret) {
  int err = SSL_get_error(ssl, ret);
  return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
}

// One handshake through a BIO pair. The server's cost counts SSL_new, every handshake call
// (which includes verifying the client's chain and writing the session ticket) and SSL_free:
// what a server pays per connection. `offer` (may be null) is offered for resumption; on
// success `received` holds the client's new session (owned by the caller). With `keep`, the
// server SSL is not freed but handed over, idle and without its BIO, as a gateway holds it.
bool handshakeOnce(SSL_CTX* serverCtx, SSL_CTX* clientCtx, const device::DeviceCredentials& cred,
                   SSL_SESSION* offer, SSL_SESSION** received, bool& resumed, SideTimes& times,
                   std::string& error, SSL** keep = nullptr) {
  SSL* client = timed(times.client, [&] { return SSL_new(clientCtx); });
  SSL* server = timed(times.server, [&] { return SSL_new(serverCtx); });
  if (!client || !server) {
    SSL_free(client);
    SSL_free(server);
    error = "SSL_new: " + net::takeOpenSslError();
    return false;
  }
  BIO* clientBio = nullptr;
  BIO* serverBio = nullptr;
  BIO_new_bio_pair(&clientBio, 0, &serverBio, 0);
  SSL_set_bio(client, clientBio, clientBio);
  SSL_set_bio(server, serverBio, serverBio);
  timed(times.client, [&] {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(client), "127.0.0.1");
    SSL_use_certificate(client, cred.certificate());
    SSL_use_PrivateKey(client, cred.key());
    if (offer) SSL_set_session(client, offer);
    SSL_set_connect_state(client);
    return 0;
  });
  SSL_set_accept_state(server);

  bool clientDone = false, serverDone = false, ok = true;
  for (int round = 0; round < kMaxRounds && ok && !(clientDone && serverDone); ++round) {
    if (!clientDone) {
      int ret = timed(times.client, [&] { return SSL_do_handshake(client); });
      clientDone = ret == 1;
      if (!clientDone && !wantsMore(client, ret)) {
        error = "client handshake: " + net::takeOpenSslError();
        ok = false;
      }
    }
    if (!serverDone && ok) {
      int ret = timed(times.server, [&] { return SSL_do_handshake(server); });
      serverDone = ret == 1;
      if (!serverDone && !wantsMore(server, ret)) {
        error = "server handshake: " + net::takeOpenSslError() +
                " (verify: " + X509_verify_cert_error_string(SSL_get_verify_result(server)) + ")";
        ok = false;
      }
    }
  }
  if (ok && !(clientDone && serverDone)) {
    error = "handshake did not finish";
    ok = false;
  }
  if (ok) {
    // The ticket follows the server's Finished; the client takes it in with its first read.
    timed(times.client, [&] {
      char byte;
      return SSL_read(client, &byte, 1);
    });
    resumed = SSL_session_reused(server) == 1;
    *received = SSL_get1_session(client);
  }
  // As TlsTransport does: an SSL freed without a recorded shutdown marks its session not
  // resumable, and the ticket just received would never be offered.
  SSL_set_shutdown(client, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_set_shutdown(server, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  if (keep && ok) {
    // The BIO pair's buffers stand in for the kernel's socket buffers: not the SSL's memory.
    SSL_set_bio(server, nullptr, nullptr);
    *keep = server;
    server = nullptr;
  }
  timed(times.server, [&] {
    SSL_free(server);
    return 0;
  });
  timed(times.client, [&] {
    SSL_free(client);
    return 0;
  });
  return ok;
}

}  // namespace

void runOpensslHandshakeBench(const BenchFleet& fleet, std::size_t iterations,
                              OpensslFigures& out) {
  out = OpensslFigures{};
  out.ran = true;
  std::string error;
  // The contexts impgate and its devices use: same protocol floor, modes, ticket policy and
  // verification.
  net::TlsServerOptions serverOptions;
  serverOptions.certFile = fleet.home().gatewayCert().string();
  serverOptions.keyFile = fleet.home().gatewayKey().string();
  serverOptions.clientCaFile = fleet.home().caCert().string();
  auto serverMade = net::TlsContext::server(serverOptions);
  if (!serverMade) {
    out.error = serverMade.error().message;
    return;
  }
  net::TlsClientOptions clientOptions;
  clientOptions.caFile = fleet.home().caCert().string();
  auto clientMade = net::TlsContext::client(clientOptions);
  if (!clientMade) {
    out.error = clientMade.error().message;
    return;
  }
  auto server = std::move(*serverMade);
  auto client = std::move(*clientMade);

  std::vector<SSL_SESSION*> sessions(iterations, nullptr);
  auto freeSessions = [&] {
    for (auto*& s : sessions) {
      if (s) SSL_SESSION_free(s);
      s = nullptr;
    }
  };

  // Warm-up: first-use costs (lazy tables, allocator growth) are not a handshake's.
  SideTimes ignored;
  for (std::size_t i = 0; i < kWarmup; ++i) {
    SSL_SESSION* s = nullptr;
    bool resumed = false;
    if (!handshakeOnce(server->get(), client->get(), *fleet.credentials(i % fleet.size()), nullptr,
                       &s, resumed, ignored, error)) {
      out.error = "warm-up: " + error;
      return;
    }
    SSL_SESSION_free(s);
  }

  SideTimes full;
  for (std::size_t i = 0; i < iterations; ++i) {
    bool resumed = false;
    if (interrupted() ||
        !handshakeOnce(server->get(), client->get(), *fleet.credentials(i % fleet.size()), nullptr,
                       &sessions[i], resumed, full, error)) {
      out.error = interrupted() ? "interrupted" : "full handshake: " + error;
      freeSessions();
      return;
    }
    ++out.fullHandshakes;
  }
  SideTimes resumedTimes;
  for (std::size_t i = 0; i < iterations; ++i) {
    SSL_SESSION* next = nullptr;
    bool resumed = false;
    if (interrupted() ||
        !handshakeOnce(server->get(), client->get(), *fleet.credentials(i % fleet.size()),
                       sessions[i], &next, resumed, resumedTimes, error)) {
      out.error = interrupted() ? "interrupted" : "resumed handshake: " + error;
      freeSessions();
      return;
    }
    if (next) SSL_SESSION_free(next);
    ++out.resumedHandshakes;
    if (resumed) ++out.resumedAccepted;
  }
  freeSessions();

  // Memory: keep the server side of `iterations` more full handshakes, idle, and count the heap
  // they hold. The client side is freed each time.
  std::vector<SSL*> kept(iterations, nullptr);
  std::size_t heapBefore = heapInUse();
  for (std::size_t i = 0; i < iterations && out.error.empty(); ++i) {
    SSL_SESSION* s = nullptr;
    bool resumed = false;
    if (interrupted() ||
        !handshakeOnce(server->get(), client->get(), *fleet.credentials(i % fleet.size()), nullptr,
                       &s, resumed, ignored, error, &kept[i])) {
      out.error = interrupted() ? "interrupted" : "retained handshake: " + error;
    }
    if (s) SSL_SESSION_free(s);
  }
  std::size_t heapAfter = heapInUse();
  // Under AddressSanitizer malloc is replaced and mallinfo2() sees nothing: no figure then,
  // rather than a false zero.
  if (out.error.empty() && heapAfter > heapBefore) {
    out.retainedConnections = iterations;
    out.heapPerIdleServerSslKiB =
        (static_cast<double>(heapAfter) - static_cast<double>(heapBefore)) / 1024.0 /
        static_cast<double>(iterations);
  }
  for (SSL* ssl : kept) SSL_free(ssl);
  if (!out.error.empty()) return;

  auto perHandshakeUs = [](nanoseconds total, std::size_t count) {
    return count ? std::chrono::duration<double, std::micro>(total).count() /
                       static_cast<double>(count)
                 : 0.0;
  };
  out.fullServerUs = perHandshakeUs(full.server, out.fullHandshakes);
  out.fullClientUs = perHandshakeUs(full.client, out.fullHandshakes);
  out.resumedServerUs = perHandshakeUs(resumedTimes.server, out.resumedHandshakes);
  out.resumedClientUs = perHandshakeUs(resumedTimes.client, out.resumedHandshakes);
}

}  // namespace impgate::bench
