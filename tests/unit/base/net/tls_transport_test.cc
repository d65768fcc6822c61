#include "gateway/base/net/tls_transport.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "gateway/base/pki/certificate_info.h"
#include "gateway/base/pki/pem_files.h"
#include "tests/support/wait_until.h"
#include "tests/unit/base/net/test_fleet.h"

using namespace impgate::net;
using impgate::testing::TestFleet;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kDeadline = 5s;

// One non-blocking stream socket pair: the gateway's end and the device's end.
struct Link {
  int serverFd = -1;
  int clientFd = -1;
  Link() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
    serverFd = fds[0];
    clientFd = fds[1];
  }
  ~Link() {
    ::close(serverFd);
    ::close(clientFd);
  }
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;
};

// Waits a little for either end to become readable: the other side has answered.
void waitForBytes(const Link& link) {
  pollfd fds[2] = {{link.serverFd, POLLIN, 0}, {link.clientFd, POLLIN, 0}};
  ::poll(fds, 2, 50);
}

bool inProgress(IoStatus s) {
  return s == IoStatus::kWantRead || s == IoStatus::kWantWrite;
}

struct HandshakeOutcome {
  IoStatus server;
  IoStatus client;
};

// Drives both handshakes until neither is in progress, the server fails (a client may then wait
// forever) or the deadline passes.
HandshakeOutcome handshake(Transport& server, Transport& client, const Link& link) {
  HandshakeOutcome out{IoStatus::kWantRead, IoStatus::kWantRead};
  auto deadline = Clock::now() + kDeadline;
  while ((inProgress(out.server) || inProgress(out.client)) && Clock::now() < deadline) {
    if (inProgress(out.client)) out.client = client.handshake();
    if (inProgress(out.server)) out.server = server.handshake();
    if (out.server == IoStatus::kError || out.client == IoStatus::kError) break;
    waitForBytes(link);
  }
  return out;
}

// Writes all of `text`, retrying on kWantWrite/kWantRead as the Transport contract says.
void writeAll(Transport& t, const std::string& text) {
  std::span<const uint8_t> rest(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  auto deadline = Clock::now() + kDeadline;
  while (!rest.empty() && Clock::now() < deadline) {
    IoResult r = t.write(rest);
    if (r.status == IoStatus::kOk) {
      rest = rest.subspan(r.bytes);
      continue;
    }
    INFO(t.lastError());
    REQUIRE(inProgress(r.status));
  }
  REQUIRE(rest.empty());
}

// Reads until `size` bytes arrived, or until the transport reports something other than data
// or "try again". Returns the bytes and the last status.
std::pair<std::string, IoStatus> readUpTo(Transport& t, int fd, std::size_t size) {
  std::string got;
  IoStatus last = IoStatus::kWantRead;
  auto deadline = Clock::now() + kDeadline;
  while (got.size() < size && Clock::now() < deadline) {
    uint8_t buf[4096];
    IoResult r = t.read(buf);
    last = r.status;
    if (r.status == IoStatus::kOk) {
      got.append(reinterpret_cast<const char*>(buf), r.bytes);
      continue;
    }
    if (!inProgress(r.status)) break;
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 50);
  }
  return {got, last};
}

std::string readExactly(Transport& t, int fd, std::size_t size) {
  auto [got, status] = readUpTo(t, fd, size);
  INFO(t.lastError());
  REQUIRE(got.size() == size);
  return got;
}

// A client transport for `link`, verifying the gateway as 127.0.0.1.
std::unique_ptr<TlsTransport> client(const TlsContext& ctx, const Link& link,
                                     SSL_SESSION* session = nullptr,
                                     const std::string& serverName = "127.0.0.1") {
  auto t = TlsTransport::connect(ctx, link.clientFd, serverName, session);
  REQUIRE(t);
  return t;
}

std::unique_ptr<TlsTransport> server(const TlsContext& ctx, const Link& link) {
  auto t = TlsTransport::accept(ctx, link.serverFd);
  REQUIRE(t);
  return t;
}

// Frees an SSL_SESSION with the test.
struct SessionRef {
  SSL_SESSION* s;
  explicit SessionRef(SSL_SESSION* session) : s(session) {}
  ~SessionRef() {
    if (s) SSL_SESSION_free(s);
  }
  SessionRef(const SessionRef&) = delete;
  SessionRef& operator=(const SessionRef&) = delete;
};

// A first connection's ticket: full handshake, then one read on the client takes it in.
SSL_SESSION* firstTicket(const TlsContext& serverCtx, const TlsContext& clientCtx) {
  Link link;
  auto s = server(serverCtx, link);
  auto c = client(clientCtx, link);
  auto outcome = handshake(*s, *c, link);
  INFO("server: " << s->lastError() << " client: " << c->lastError());
  REQUIRE(outcome.server == IoStatus::kOk);
  writeAll(*s, "welcome");
  readExactly(*c, link.clientFd, 7);
  SSL_SESSION* ticket = c->takeSession();
  REQUIRE(ticket != nullptr);
  return ticket;
}

// Whether the gateway accepts a connection that offers `ticket` (may be null: full handshake),
// and whether that connection resumed. A fresh ticket the server issues lands in `next`.
struct Attempt {
  IoStatus server;
  bool resumed;
  std::string error;
};
Attempt attempt(const TlsContext& serverCtx, const TlsContext& clientCtx, SSL_SESSION* ticket,
                SSL_SESSION** next = nullptr) {
  Link link;
  auto s = server(serverCtx, link);
  auto c = client(clientCtx, link, ticket);
  auto outcome = handshake(*s, *c, link);
  Attempt a{outcome.server, s->resumed(), s->lastError()};
  if (next && outcome.server == IoStatus::kOk) {
    writeAll(*s, "welcome");
    readExactly(*c, link.clientFd, 7);
    *next = c->takeSession();
  }
  return a;
}

}  // namespace

TEST_CASE("a device with a fleet certificate completes the handshake and is identified") {
  TestFleet fleet;
  auto serverCtx = fleet.serverContext();
  auto clientCtx = fleet.clientContext("dev-1");
  Link link;
  auto s = server(*serverCtx, link);
  auto c = client(*clientCtx, link);

  auto outcome = handshake(*s, *c, link);
  INFO("server: " << s->lastError() << " client: " << c->lastError());
  REQUIRE(outcome.server == IoStatus::kOk);
  REQUIRE(outcome.client == IoStatus::kOk);
  CHECK(s->peerIdentity() == "dev-1");
  CHECK_FALSE(s->resumed());
  CHECK_FALSE(c->resumed());
  // The gateway's certificate carries no device id.
  CHECK(c->peerIdentity().empty());
}

TEST_CASE("application data flows both ways after the handshake") {
  TestFleet fleet;
  auto serverCtx = fleet.serverContext();
  auto clientCtx = fleet.clientContext("dev-1");
  Link link;
  auto s = server(*serverCtx, link);
  auto c = client(*clientCtx, link);
  REQUIRE(handshake(*s, *c, link).server == IoStatus::kOk);

  writeAll(*c, "hello gateway");
  CHECK(readExactly(*s, link.serverFd, 13) == "hello gateway");
  writeAll(*s, "hello device");
  CHECK(readExactly(*c, link.clientFd, 12) == "hello device");

  // Larger than one TLS record (16 KiB) and than one read.
  std::string big(100 * 1024, 'x');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  std::string got;
  std::span<const uint8_t> rest(reinterpret_cast<const uint8_t*>(big.data()), big.size());
  auto deadline = Clock::now() + kDeadline;
  while (got.size() < big.size() && Clock::now() < deadline) {
    if (!rest.empty()) {
      IoResult w = s->write(rest);
      if (w.status == IoStatus::kOk) rest = rest.subspan(w.bytes);
    }
    uint8_t buf[4096];
    IoResult r = c->read(buf);
    if (r.status == IoStatus::kOk) got.append(reinterpret_cast<const char*>(buf), r.bytes);
  }
  CHECK(got == big);
}

TEST_CASE("a clean shutdown reads as kClosed on the other side") {
  TestFleet fleet;
  auto serverCtx = fleet.serverContext();
  auto clientCtx = fleet.clientContext("dev-1");
  Link link;
  auto s = server(*serverCtx, link);
  auto c = client(*clientCtx, link);
  REQUIRE(handshake(*s, *c, link).server == IoStatus::kOk);

  c->shutdown();
  auto [got, status] = readUpTo(*s, link.serverFd, 1);
  CHECK(got.empty());
  CHECK(status == IoStatus::kClosed);
}

TEST_CASE("a device resumes its TLS session with the ticket from its last connection") {
  TestFleet fleet;
  auto serverCtx = fleet.serverContext();
  auto clientCtx = fleet.clientContext("dev-1");

  SessionRef ticket(nullptr);
  {
    Link link;
    auto s = server(*serverCtx, link);
    auto c = client(*clientCtx, link);
    REQUIRE(handshake(*s, *c, link).server == IoStatus::kOk);
    // The ticket travels after the handshake; the client has it once it read past it.
    writeAll(*s, "welcome");
    readExactly(*c, link.clientFd, 7);
    ticket.s = c->takeSession();
    REQUIRE(ticket.s != nullptr);
  }

  Link link;
  auto s = server(*serverCtx, link);
  auto c = client(*clientCtx, link, ticket.s);
  REQUIRE(handshake(*s, *c, link).server == IoStatus::kOk);
  CHECK(c->resumed());
  CHECK(s->resumed());
  // A resumed session still names the device.
  CHECK(s->peerIdentity() == "dev-1");
  writeAll(*c, "again");
  CHECK(readExactly(*s, link.serverFd, 5) == "again");
}

TEST_CASE("takeSession gives nothing before a ticket arrived or when tickets are off") {
  TestFleet fleet;
  auto clientCtx = fleet.clientContext("dev-1");

  SECTION("right after the handshake") {
    auto serverCtx = fleet.serverContext();
    Link link;
    auto s = server(*serverCtx, link);
    auto c = client(*clientCtx, link);
    REQUIRE(handshake(*s, *c, link).server == IoStatus::kOk);
    SessionRef early(c->takeSession());
    CHECK(early.s == nullptr);
  }
  SECTION("from a gateway without session tickets") {
    auto serverCtx = fleet.serverContext(false);
    Link link;
    auto s = server(*serverCtx, link);
    auto c = client(*clientCtx, link);
    REQUIRE(handshake(*s, *c, link).server == IoStatus::kOk);
    writeAll(*s, "welcome");
    readExactly(*c, link.clientFd, 7);
    SessionRef none(c->takeSession());
    CHECK(none.s == nullptr);
  }
}

TEST_CASE("a device certificate from another CA fails the handshake") {
  TestFleet fleet;
  TestFleet otherFleet;
  auto serverCtx = fleet.serverContext();
  // Trusts our gateway but presents a certificate our CA did not issue.
  impgate::net::TlsClientOptions options;
  options.caFile = fleet.home().caCert();
  otherFleet.enroll("dev-1");
  options.certFile = otherFleet.home().deviceCert("dev-1");
  options.keyFile = otherFleet.home().deviceKey("dev-1");
  auto made = TlsContext::client(options);
  REQUIRE(made);
  auto clientCtx = std::move(*made);

  Link link;
  auto s = server(*serverCtx, link);
  auto c = client(*clientCtx, link);
  auto outcome = handshake(*s, *c, link);
  CHECK(outcome.server == IoStatus::kError);
  CHECK_FALSE(s->lastError().empty());
  CHECK_THAT(s->lastError(), Catch::Contains("certificate"));
  CHECK(s->peerIdentity().empty());

  // With TLS 1.3 the client finishes first and learns of the refusal from the alert.
  if (outcome.client == IoStatus::kOk) {
    auto [got, status] = readUpTo(*c, link.clientFd, 1);
    CHECK(got.empty());
    CHECK(status == IoStatus::kError);
    CHECK_FALSE(c->lastError().empty());
  } else {
    CHECK(outcome.client == IoStatus::kError);
  }
}

TEST_CASE("a TLS context refuses missing files with kTls and names the file") {
  TestFleet fleet;
  TlsClientOptions client;
  client.caFile = fleet.home().caCert().string() + ".missing";
  auto noCa = TlsContext::client(client);
  REQUIRE_FALSE(noCa);
  CHECK(noCa.error().code == impgate::net::ErrorCode::kTls);
  CHECK_THAT(noCa.error().message, Catch::Contains("cannot load CA " + client.caFile));

  impgate::net::TlsServerOptions server;
  server.certFile = fleet.home().gatewayCert().string() + ".missing";
  server.keyFile = fleet.home().gatewayKey();
  server.clientCaFile = fleet.home().caCert();
  auto noCert = TlsContext::server(server);
  REQUIRE_FALSE(noCert);
  CHECK(noCert.error().code == impgate::net::ErrorCode::kTls);
  CHECK_THAT(noCert.error().message, Catch::Contains("cannot load certificate " + server.certFile));
}

TEST_CASE("a device without a certificate fails the handshake") {
  TestFleet fleet;
  auto serverCtx = fleet.serverContext();
  auto clientCtx = fleet.clientContext();
  Link link;
  auto s = server(*serverCtx, link);
  auto c = client(*clientCtx, link);
  auto outcome = handshake(*s, *c, link);
  CHECK(outcome.server == IoStatus::kError);
  CHECK_FALSE(s->lastError().empty());
  CHECK(s->peerIdentity().empty());
}

TEST_CASE("useCredentials presents a device certificate set on the connection") {
  TestFleet fleet;
  fleet.enroll("dev-7");
  auto serverCtx = fleet.serverContext();
  auto clientCtx = fleet.clientContext();

  // What the device SDK does: one shared context, the credential per connection.
  TlsClientOptions options;
  options.caFile = fleet.home().caCert();
  options.certFile = fleet.home().deviceCert("dev-7");
  options.keyFile = fleet.home().deviceKey("dev-7");
  auto holder = TlsContext::client(options);
  REQUIRE(holder);
  SSL* donor = SSL_new((*holder)->get());
  REQUIRE(donor);

  Link link;
  auto s = server(*serverCtx, link);
  auto c = client(*clientCtx, link);
  REQUIRE(c->useCredentials(SSL_get_certificate(donor), SSL_get_privatekey(donor)));
  SSL_free(donor);
  REQUIRE(handshake(*s, *c, link).server == IoStatus::kOk);
  CHECK(s->peerIdentity() == "dev-7");
}

TEST_CASE("the device refuses a gateway certificate that does not name the server") {
  TestFleet fleet;
  auto serverCtx = fleet.serverContext();
  auto clientCtx = fleet.clientContext("dev-1");
  Link link;
  auto s = server(*serverCtx, link);
  auto c = client(*clientCtx, link, nullptr, "gateway.example.com");
  auto outcome = handshake(*s, *c, link);
  CHECK(outcome.client == IoStatus::kError);
  CHECK_THAT(c->lastError(), Catch::Contains("certificate"));
}

TEST_CASE("the device refuses a gateway whose certificate is from another CA") {
  TestFleet fleet;
  TestFleet otherFleet;
  auto serverCtx = otherFleet.serverContext();
  auto clientCtx = fleet.clientContext("dev-1");
  Link link;
  auto s = server(*serverCtx, link);
  auto c = client(*clientCtx, link);
  auto outcome = handshake(*s, *c, link);
  CHECK(outcome.client == IoStatus::kError);
  CHECK_THAT(c->lastError(), Catch::Contains("certificate"));
}

TEST_CASE("a ticket never outlives the device certificate, and an expired one does not resume") {
  TestFleet fleet;
  // Valid for three seconds: long enough to connect and resume once, short enough to wait out.
  fleet.enroll("dev-short", 3s);
  auto serverCtx = fleet.serverContext();
  auto clientCtx = fleet.clientContext("dev-short");
  auto cert = impgate::pki::readCertificateFile(fleet.home().deviceCert("dev-short"));
  REQUIRE(cert.ok());

  SessionRef ticket(firstTicket(*serverCtx, *clientCtx));
  // The ticket's lifetime (OpenSSL's default is two hours) ends with the certificate.
  CHECK(SSL_SESSION_get_ticket_lifetime_hint(ticket.s) <= 3);

  // While the certificate is valid the ticket resumes, and the fresh ticket issued on
  // resumption is bounded by the certificate too.
  SSL_SESSION* renewed = nullptr;
  Attempt early = attempt(*serverCtx, *clientCtx, ticket.s, &renewed);
  SessionRef renewedRef(renewed);
  INFO(early.error);
  REQUIRE(early.server == IoStatus::kOk);
  CHECK(early.resumed);
  REQUIRE(renewed != nullptr);
  CHECK(SSL_SESSION_get_ticket_lifetime_hint(renewed) <= 3);

  REQUIRE(impgate::testing::waitUntil(
      [&] { return X509_cmp_current_time(X509_get0_notAfter(cert->get())) < 0; }, 10s, 50ms));

  // Neither ticket gets an expired certificate back in, and a full handshake fails as before.
  for (SSL_SESSION* offered : {ticket.s, renewed, static_cast<SSL_SESSION*>(nullptr)}) {
    Attempt late = attempt(*serverCtx, *clientCtx, offered);
    INFO("offered a ticket: " << (offered != nullptr) << " error: " << late.error);
    CHECK(late.server == IoStatus::kError);
    CHECK_FALSE(late.resumed);
    CHECK_THAT(late.error, Catch::Contains("expired"));
  }
}

TEST_CASE("the revocation check refuses full and resumed handshakes") {
  TestFleet fleet;
  auto serverCtx = fleet.serverContext();
  auto clientCtx = fleet.clientContext("dev-1");
  auto cert = impgate::pki::readCertificateFile(fleet.home().deviceCert("dev-1"));
  REQUIRE(cert.ok());

  bool revoked = false;
  std::string askedId;
  std::string askedSerial;
  serverCtx->setRevocationCheck([&](std::string_view id, std::string_view serial) {
    askedId = id;
    askedSerial = serial;
    return revoked;
  });

  SessionRef ticket(firstTicket(*serverCtx, *clientCtx));
  CHECK(askedId == "dev-1");
  CHECK(askedSerial == impgate::pki::serialHex(cert->get()));
  Attempt before = attempt(*serverCtx, *clientCtx, ticket.s);
  CHECK(before.server == IoStatus::kOk);
  CHECK(before.resumed);

  revoked = true;
  for (SSL_SESSION* offered : {ticket.s, static_cast<SSL_SESSION*>(nullptr)}) {
    Attempt after = attempt(*serverCtx, *clientCtx, offered);
    INFO("offered a ticket: " << (offered != nullptr));
    CHECK(after.server == IoStatus::kError);
    CHECK_THAT(after.error, Catch::Contains("revoked"));
  }
}

TEST_CASE("a read can need a write: a key update stuck on a full socket goes out with a read") {
  TestFleet fleet;
  auto serverCtx = fleet.serverContext();
  auto clientCtx = fleet.clientContext("dev-1");
  Link link;
  auto s = server(*serverCtx, link);
  auto c = client(*clientCtx, link);
  REQUIRE(handshake(*s, *c, link).server == IoStatus::kOk);
  writeAll(*s, "welcome");
  readExactly(*c, link.clientFd, 7);

  // Bytes the client has not read count against the server's send buffer (AF_UNIX): with a
  // backlog in flight and the buffer then made small, the socket is full while no TLS write is
  // pending, which is when a key update can be requested.
  std::string backlog(64 * 1024, 'b');
  writeAll(*s, backlog);
  int small = 1;
  REQUIRE(::setsockopt(link.serverFd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  REQUIRE(s->requestKeyUpdate());
  writeAll(*c, "ping");

  // The server's read must first send its KeyUpdate: it cannot, so the read wants a write.
  uint8_t buf[64];
  IoResult r = s->read(buf);
  REQUIRE(r.status == IoStatus::kWantWrite);
  // Once the client has read the backlog, retrying the read (no write queued) sends the
  // KeyUpdate and delivers the data, and both directions go on under the new keys.
  CHECK(readExactly(*c, link.clientFd, backlog.size()) == backlog);
  CHECK(readExactly(*s, link.serverFd, 4) == "ping");
  writeAll(*s, "after");
  CHECK(readExactly(*c, link.clientFd, 5) == "after");
  writeAll(*c, "again");
  CHECK(readExactly(*s, link.serverFd, 5) == "again");
}
