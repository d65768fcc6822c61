// DeviceClient's code push (docs/protocol.md, "Code push") against a scripted gateway.
//
// The test thread plays the gateway over real TLS on loopback with a blocking TlsTransport and
// speaks the code push frames itself (offers, CODE_DATA answers, dropped links, corrupt bytes);
// the device runs on its own EventLoop thread with an in-memory CodeStore (MemoryCodeStore
// below) or the FileCodeStore.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <variant>

#include "gateway/base/code/hex.h"
#include "gateway/base/code/manifest.h"
#include "gateway/base/net/tls_transport.h"
#include "gateway/base/pki/code_signing.h"
#include "gateway/base/protocol/codec.h"
#include "gateway/device/blocking_device.h"
#include "gateway/device/device_client.h"
#include "gateway/device/file_code_store.h"
#include "tests/support/on_loop.h"
#include "tests/support/testbed.h"
#include "tests/support/wait_until.h"
#include "tests/unit/base/net/test_fleet.h"

using namespace impgate;
using impgate::testing::TestFleet;
using impgate::testing::waitUntil;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kDeadline = 10s;

// A made-up program of about `size` bytes: varied lines, as source or a script would be.
std::vector<uint8_t> program(std::size_t size, uint32_t seed) {
  std::minstd_rand rng(seed);
  std::string text;
  for (int n = 0; text.size() < size; ++n) {
    text += "let v" + std::to_string(n) + " = " + std::to_string(rng() % 100000) + " * x + " +
            std::to_string(rng() % 977) + ";\n";
  }
  text.resize(size);
  return {text.begin(), text.end()};
}

// `code` with its line `line` (0-based) replaced by `replacement` (which ends in '\n').
std::vector<uint8_t> withLine(const std::vector<uint8_t>& code, int line,
                              const std::string& replacement) {
  std::string text(code.begin(), code.end());
  std::size_t start = 0;
  for (int i = 0; i < line; ++i) start = text.find('\n', start) + 1;
  std::size_t end = text.find('\n', start) + 1;
  text.replace(start, end - start, replacement);
  return {text.begin(), text.end()};
}

// One code version as the gateway offers it.
struct Version {
  std::vector<uint8_t> bytes;
  code::Sha256 sha{};
  code::Manifest manifest;
  protocol::CodeSignature signature{};
  std::vector<uint8_t> rawChunks;  // the offer's chunk list on the wire

  Version(std::vector<uint8_t> code, EVP_PKEY* key) : bytes(std::move(code)) {
    sha = code::sha256(bytes);
    manifest = code::buildManifest(bytes);
    signature = pki::signCode(key, sha, static_cast<uint32_t>(bytes.size()));
    for (const auto& c : manifest.chunks) protocol::appendCodeChunk({c.sha, c.length}, rawChunks);
  }
  protocol::CodeOffer offer(bool mandatory = false, uint32_t deployment = 7) const {
    return {deployment, mandatory,
            sha,        static_cast<uint32_t>(bytes.size()),
            signature,  protocol::CodeChunkList(rawChunks)};
  }
  // Bytes of the chunks of this version whose sha256 `other` does not hold.
  uint64_t bytesNotIn(const Version& other) const {
    uint64_t n = 0;
    for (const auto& c : manifest.chunks) {
      bool found = false;
      for (const auto& o : other.manifest.chunks) found = found || o.sha == c.sha;
      if (!found) n += c.length;
    }
    return n;
  }
};

// A CodeStore in memory, used on the device's loop thread (the test reads it through onLoop).
class MemoryCodeStore final : public device::CodeStore {
 public:
  struct Partial {
    std::vector<uint8_t> bytes;
    std::vector<device::CodeRange> held;
  };

  void run(const std::vector<uint8_t>& code) {
    current = code;
    sha = code::sha256(code);
    manifest = code::buildManifest(code);
  }

  std::optional<code::Sha256> runningCode() override { return sha; }
  code::Manifest runningManifest() override { return manifest; }
  device::Status readRunning(uint32_t offset, std::span<uint8_t> out) override {
    if (uint64_t{offset} + out.size() > current.size()) return fail("read past the code");
    std::copy_n(current.begin() + offset, out.size(), out.begin());
    return {};
  }
  device::Result<std::vector<device::CodeRange>> openPartial(const code::Sha256& code,
                                                             uint32_t size) override {
    Partial& p = partials[code];
    if (p.bytes.size() != size) p = Partial{std::vector<uint8_t>(size), {}};
    return p.held;
  }
  device::Status writePartial(const code::Sha256& code, uint32_t offset,
                              std::span<const uint8_t> bytes) override {
    Partial& p = partials.at(code);
    if (uint64_t{offset} + bytes.size() > p.bytes.size()) return fail("write past the code");
    std::copy(bytes.begin(), bytes.end(), p.bytes.begin() + offset);
    return {};
  }
  device::Status readPartial(const code::Sha256& code, uint32_t offset,
                             std::span<uint8_t> out) override {
    Partial& p = partials.at(code);
    if (uint64_t{offset} + out.size() > p.bytes.size()) return fail("read past the code");
    std::copy_n(p.bytes.begin() + offset, out.size(), out.begin());
    return {};
  }
  device::Status markHeld(const code::Sha256& code, device::CodeRange range) override {
    partials.at(code).held.push_back(range);
    return {};
  }
  void discardPartial(const code::Sha256& code) override { partials.erase(code); }
  device::Status install(const code::Sha256& code, const code::Manifest& m) override {
    ++installs;
    current = std::move(partials.at(code).bytes);
    partials.erase(code);
    sha = code;
    manifest = m;
    return {};
  }

  std::vector<uint8_t> current;
  std::optional<code::Sha256> sha;
  code::Manifest manifest;
  std::map<code::Sha256, Partial> partials;
  int installs = 0;

 private:
  static device::Error fail(std::string what) {
    return device::Error{device::ErrorCode::kStorage, std::move(what)};
  }
};

// The device: an EventLoop on its own thread with one DeviceClient doing code push.
class DeviceThread {
 public:
  DeviceThread(TestFleet& fleet, uint16_t port, device::CodePushOptions codePush)
      : tls_(fleet.clientContext()) {
    fleet.enroll("dev-1");
    auto loaded = device::DeviceCredentials::load(fleet.home().deviceCert("dev-1"),
                                                  fleet.home().deviceKey("dev-1"));
    REQUIRE(loaded);
    std::shared_ptr<device::DeviceCredentials> credentials = std::move(*loaded);
    device::DeviceOptions options;
    options.gateway = "127.0.0.1:" + std::to_string(port);
    options.codeId = "plain-device";
    options.codePush = std::move(codePush);
    device::DeviceClient::Handlers handlers;
    handlers.onOnline = [this](const protocol::Welcome&) { ++onlines; };
    handlers.onOffline = [this](const std::string&) { ++offlines; };
    handlers.onCode = [this](const device::CodeEvent& e) {
      std::lock_guard<std::mutex> lock(mutex_);
      events_.push_back(e);
    };
    client_ = std::make_unique<device::DeviceClient>(loop_, *tls_, std::move(credentials), options,
                                                     std::move(handlers));
    thread_ = std::thread([this] { loopError_ = loop_.run(); });
  }
  ~DeviceThread() {
    onLoop([this] {
      client_->disconnect();
      return 0;
    });
    loop_.stop();
    thread_.join();
    CHECK_FALSE(loopError_);
    client_.reset();
  }

  template <typename F>
  std::invoke_result_t<F&> onLoop(F f) {
    return testing::runOnLoop(loop_, std::move(f), kDeadline);
  }
  void connect() {
    onLoop([this] {
      client_->connect();
      return 0;
    });
  }
  device::DeviceClient& client() { return *client_; }
  // The first event of `kind` not yet taken, waiting for it.
  std::optional<device::CodeEvent> waitEvent(device::CodeEvent::Kind kind) {
    std::optional<device::CodeEvent> found;
    waitUntil(
        [&] {
          std::lock_guard<std::mutex> lock(mutex_);
          for (auto it = events_.begin(); it != events_.end(); ++it) {
            if (it->kind == kind) {
              found = *it;
              events_.erase(it);
              return true;
            }
          }
          return false;
        },
        kDeadline);
    return found;
  }
  bool heardAny(device::CodeEvent::Kind kind) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& e : events_) {
      if (e.kind == kind) return true;
    }
    return false;
  }
  uint64_t fetched() {
    return onLoop([this] { return client_->codeBytesFetched(); });
  }

  std::atomic<int> onlines{0};
  std::atomic<int> offlines{0};

 private:
  std::unique_ptr<net::TlsContext> tls_;
  net::EventLoop loop_;
  std::unique_ptr<device::DeviceClient> client_;
  std::mutex mutex_;
  std::vector<device::CodeEvent> events_;
  std::thread thread_;
  std::error_code loopError_;
};

// One frame the device sent, kept with its bytes so decoded views stay valid.
struct RawFrame {
  uint8_t type = 0;
  std::vector<uint8_t> body;

  template <typename T>
  std::optional<T> as() const {
    protocol::Frame frame;
    if (protocol::decode(type, body, frame) != protocol::DecodeError::kNone) return std::nullopt;
    if (auto* t = std::get_if<T>(&frame)) return *t;
    return std::nullopt;
  }
};

// The scripted gateway, run by the test thread on a blocking socket with short timeouts.
struct GatewayPeer {
  int listenFd = -1;
  int fd = -1;
  uint16_t port = 0;
  std::unique_ptr<net::TlsContext> ctx;
  std::unique_ptr<net::TlsTransport> tls;
  protocol::FrameReader reader{protocol::kDefaultMaxFrame};
  std::deque<RawFrame> frames;

  explicit GatewayPeer(TestFleet& fleet) : ctx(fleet.serverContext()) {
    listenFd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listenFd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listenFd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listenFd, 4) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listenFd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port = ntohs(addr.sin_port);
  }
  ~GatewayPeer() {
    closeLink();
    ::close(listenFd);
  }

  void closeLink() {
    tls.reset();
    if (fd >= 0) ::close(fd);
    fd = -1;
  }

  // Accepts the device, completes TLS, reads its HELLO and answers WELCOME.
  protocol::Hello acceptDevice(std::string& codeId) {
    closeLink();
    pollfd p{listenFd, POLLIN, 0};
    REQUIRE(::poll(&p, 1, 5000) == 1);
    fd = ::accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(fd >= 0);
    timeval tv{0, 20 * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    tls = net::TlsTransport::accept(*ctx, fd);
    REQUIRE(tls);
    auto deadline = Clock::now() + kDeadline;
    net::IoStatus st = net::IoStatus::kWantRead;
    while ((st == net::IoStatus::kWantRead || st == net::IoStatus::kWantWrite) &&
           Clock::now() < deadline) {
      st = tls->handshake();
    }
    REQUIRE(st == net::IoStatus::kOk);
    reader = protocol::FrameReader(protocol::kDefaultMaxFrame);
    frames.clear();
    auto hello = next(kDeadline);
    REQUIRE(hello);
    auto h = hello->as<protocol::Hello>();
    REQUIRE(h);
    codeId = std::string(h->codeId);
    send(protocol::Welcome{protocol::kVersion, 1, 60, 1, "node-a"});
    return *h;
  }

  template <typename FrameT>
  void send(const FrameT& frame) {
    std::vector<uint8_t> bytes;
    protocol::encode(frame, bytes);
    std::span<const uint8_t> rest(bytes);
    auto deadline = Clock::now() + kDeadline;
    while (!rest.empty() && Clock::now() < deadline) {
      net::IoResult r = tls->write(rest);
      if (r.status == net::IoStatus::kOk) {
        rest = rest.subspan(r.bytes);
      } else {
        REQUIRE((r.status == net::IoStatus::kWantWrite || r.status == net::IoStatus::kWantRead));
      }
    }
    REQUIRE(rest.empty());
  }

  // The next frame from the device (PINGs are answered and skipped), or nullopt once
  // `timeout` passed or the link closed.
  std::optional<RawFrame> next(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (true) {
      while (!frames.empty()) {
        RawFrame f = std::move(frames.front());
        frames.pop_front();
        if (auto ping = f.as<protocol::Ping>()) {
          send(protocol::Pong{ping->nonce});
          continue;
        }
        return f;
      }
      if (Clock::now() >= deadline || !tls) return std::nullopt;
      uint8_t buf[16 * 1024];
      net::IoResult r = tls->read(buf);
      if (r.status == net::IoStatus::kOk) {
        auto err =
            reader.feed(std::span<const uint8_t>(buf, r.bytes), [&](uint8_t type, auto body) {
              frames.push_back({type, std::vector<uint8_t>(body.begin(), body.end())});
              return true;
            });
        REQUIRE(err == protocol::DecodeError::kNone);
      } else if (r.status != net::IoStatus::kWantRead && r.status != net::IoStatus::kWantWrite) {
        return std::nullopt;
      }
    }
  }

  protocol::CodeResult expectResult(RawFrame& keep) {
    auto f = next(kDeadline);
    REQUIRE(f);
    keep = std::move(*f);
    auto result = keep.as<protocol::CodeResult>();
    INFO("frame type " << int(keep.type));
    REQUIRE(result);
    return *result;
  }

  void answer(const Version& v, const protocol::CodeGet& get, bool corrupt = false) {
    uint32_t end =
        std::min<uint32_t>(get.offset + get.length, static_cast<uint32_t>(v.bytes.size()));
    std::vector<uint8_t> data(v.bytes.begin() + get.offset, v.bytes.begin() + end);
    if (corrupt) data[data.size() / 2] ^= 0x40;
    send(protocol::CodeData{v.sha, get.offset, data});
    served += data.size();
  }

  // What serve() saw.
  std::size_t maxOutstanding = 0;
  std::size_t gets = 0;
  uint64_t served = 0;
  std::vector<protocol::CodeGet> answered;

  // Answers the device's GETs for `v`, oldest first, once the device has gone quiet (a full
  // window of 4 is held 100 ms to catch a fifth), until a CODE_RESULT arrives (returned in `keep`)
  // or `stopAfter` answers were sent (then returns nullopt with the rest unanswered). Corrupts the
  // answer number `corruptAnswer` (1-based) when given.
  std::optional<protocol::CodeResult> serve(const Version& v, RawFrame& keep,
                                            std::size_t stopAfter = SIZE_MAX,
                                            std::size_t corruptAnswer = 0) {
    std::deque<protocol::CodeGet> outstanding;
    std::size_t answers = 0;
    auto deadline = Clock::now() + kDeadline;
    while (Clock::now() < deadline) {
      if (answers == stopAfter) return std::nullopt;
      // With a full window, wait a while for a fifth GET (which must not come) before
      // answering; otherwise answer once the device has gone quiet.
      bool full = outstanding.size() >= static_cast<std::size_t>(protocol::kMaxCodeGetsInFlight);
      auto f = next(full ? 100ms : 30ms);
      if (!f) {
        REQUIRE(tls);
        if (!outstanding.empty()) {
          answer(v, outstanding.front(), ++answers == corruptAnswer);
          answered.push_back(outstanding.front());
          outstanding.pop_front();
        }
        continue;
      }
      if (auto get = f->as<protocol::CodeGet>()) {
        REQUIRE(get->code == v.sha);
        REQUIRE(get->length >= 1);
        REQUIRE(get->length <= protocol::kMaxCodeData);
        outstanding.push_back(*get);
        ++gets;
        maxOutstanding = std::max(maxOutstanding, outstanding.size());
        REQUIRE(outstanding.size() <= static_cast<std::size_t>(protocol::kMaxCodeGetsInFlight));
        continue;
      }
      if (f->as<protocol::CodeResult>()) {
        keep = std::move(*f);
        return keep.as<protocol::CodeResult>();
      }
      FAIL("unexpected frame type " << int(f->type));
    }
    FAIL("no CODE_RESULT in time");
    return std::nullopt;
  }
};

struct Keys {
  pki::PkeyPtr signing;
  std::shared_ptr<EVP_PKEY> verify;
  Keys() {
    auto k = pki::generateSigningKey();
    REQUIRE(k);
    signing = std::move(*k);
    // The device holds the same key (a private key verifies too; impdev reads the .pub).
    EVP_PKEY_up_ref(signing.get());
    verify = std::shared_ptr<EVP_PKEY>(signing.get(), EVP_PKEY_free);
  }
};

device::CodePushOptions codePush(const Keys& keys, std::shared_ptr<device::CodeStore> store) {
  device::CodePushOptions o;
  o.verifyKey = keys.verify;
  o.store = std::move(store);
  return o;
}

std::string hex(const code::Sha256& sha) {
  return code::toHex(sha);
}

}  // namespace

TEST_CASE(
    "code push: a full transfer in windows of 4 GETs, installed, reported in the next HELLO") {
  TestFleet fleet;
  Keys keys;
  GatewayPeer gateway(fleet);
  auto store = std::make_shared<MemoryCodeStore>();
  DeviceThread device(fleet, gateway.port, codePush(keys, store));
  Version v1(program(64 * 1024, 1), keys.signing.get());

  device.connect();
  std::string codeId;
  protocol::Hello hello = gateway.acceptDevice(codeId);
  CHECK(hello.capabilities == protocol::kCapCodePush);
  CHECK(codeId.empty());  // runs no code yet

  gateway.send(v1.offer());
  RawFrame keep;
  auto result = gateway.serve(v1, keep);
  REQUIRE(result);
  CHECK(result->status == protocol::CodeResultStatus::kInstalled);
  CHECK(result->code == v1.sha);
  CHECK(gateway.maxOutstanding == 4);
  // 64 KiB in GETs of whole chunks up to 16 KiB: more than 4 GETs, so the window mattered.
  CHECK(gateway.gets > 4);
  CHECK(gateway.served == v1.bytes.size());
  auto installed = device.waitEvent(device::CodeEvent::Kind::kInstalled);
  REQUIRE(installed);
  CHECK(installed->bytesFetched == v1.bytes.size());
  CHECK(installed->bytesCopied == 0);
  CHECK(device.onLoop([&] { return store->current == v1.bytes && store->installs == 1; }));

  // The next link reports the new code.
  gateway.closeLink();
  REQUIRE(waitUntil([&] { return device.offlines.load() >= 1; }, kDeadline));
  device.connect();
  gateway.acceptDevice(codeId);
  CHECK(codeId == hex(v1.sha));
  // Offered the code it runs: installed at once, nothing fetched.
  gateway.send(v1.offer());
  RawFrame keep2;
  auto again = gateway.expectResult(keep2);
  CHECK(again.status == protocol::CodeResultStatus::kInstalled);
  CHECK(device.onLoop([&] { return store->installs; }) == 1);
}

TEST_CASE("code push: after a dropped link a new offer of the same code fetches only the rest") {
  TestFleet fleet;
  Keys keys;
  GatewayPeer gateway(fleet);
  auto store = std::make_shared<MemoryCodeStore>();
  DeviceThread device(fleet, gateway.port, codePush(keys, store));
  Version v1(program(64 * 1024, 2), keys.signing.get());

  device.connect();
  std::string codeId;
  gateway.acceptDevice(codeId);
  gateway.send(v1.offer());
  RawFrame keep;
  // Three answers, then the link is cut with GETs unanswered.
  REQUIRE_FALSE(gateway.serve(v1, keep, 3));
  uint64_t first = gateway.served;
  REQUIRE(waitUntil([&] { return device.fetched() == first; }, kDeadline));
  gateway.closeLink();
  REQUIRE(waitUntil([&] { return device.offlines.load() >= 1; }, kDeadline));
  CHECK_FALSE(device.onLoop([&] { return device.client().codeTransferActive(); }));

  device.connect();
  gateway.acceptDevice(codeId);
  CHECK(codeId.empty());
  std::vector<protocol::CodeGet> before = gateway.answered;
  gateway.answered.clear();
  gateway.served = 0;
  gateway.send(v1.offer());
  auto result = gateway.serve(v1, keep);
  REQUIRE(result);
  CHECK(result->status == protocol::CodeResultStatus::kInstalled);
  INFO("first link " << first << " bytes, second " << gateway.served << " of " << v1.bytes.size());
  CHECK(first > 0);
  CHECK(gateway.served == v1.bytes.size() - first);
  // No range fetched twice.
  for (const auto& a : gateway.answered) {
    for (const auto& b : before) {
      CHECK((a.offset + a.length <= b.offset || b.offset + b.length <= a.offset));
    }
  }
  auto installed = device.waitEvent(device::CodeEvent::Kind::kInstalled);
  REQUIRE(installed);
  CHECK(installed->bytesCopied == first);
  CHECK(installed->bytesFetched == v1.bytes.size() - first);
  CHECK(device.fetched() == v1.bytes.size());
  CHECK(device.onLoop([&] { return store->current == v1.bytes; }));
}

TEST_CASE("code push: a one-line change to a 64 KiB program fetches only the chunks it touched") {
  TestFleet fleet;
  Keys keys;
  GatewayPeer gateway(fleet);
  auto store = std::make_shared<MemoryCodeStore>();
  Version v1(program(64 * 1024, 3), keys.signing.get());
  store->run(v1.bytes);
  DeviceThread device(fleet, gateway.port, codePush(keys, store));
  Version v2(withLine(v1.bytes, 900, "let v900 = 42 * x + 1; // fixed\n"), keys.signing.get());
  REQUIRE(v2.bytes != v1.bytes);

  device.connect();
  std::string codeId;
  gateway.acceptDevice(codeId);
  CHECK(codeId == hex(v1.sha));
  gateway.send(v2.offer());
  RawFrame keep;
  auto result = gateway.serve(v2, keep);
  REQUIRE(result);
  CHECK(result->status == protocol::CodeResultStatus::kInstalled);
  CHECK(gateway.served == v2.bytesNotIn(v1));
  CHECK(gateway.served * 10 < v2.bytes.size());
  auto installed = device.waitEvent(device::CodeEvent::Kind::kInstalled);
  REQUIRE(installed);
  CHECK(installed->bytesFetched == gateway.served);
  CHECK(installed->bytesCopied == v2.bytes.size() - gateway.served);
  std::printf(
      "delta: a one-line change to a %zu-byte program fetched %llu bytes (%.1f%%), copied %llu\n",
      v2.bytes.size(), static_cast<unsigned long long>(gateway.served),
      100.0 * static_cast<double>(gateway.served) / static_cast<double>(v2.bytes.size()),
      static_cast<unsigned long long>(installed->bytesCopied));
  CHECK(device.onLoop([&] { return store->current == v2.bytes; }));
}

TEST_CASE("code push: a corrupt chunk is reported failed and never installed") {
  TestFleet fleet;
  Keys keys;
  GatewayPeer gateway(fleet);
  auto store = std::make_shared<MemoryCodeStore>();
  Version v1(program(20 * 1024, 4), keys.signing.get());
  Version v2(program(40 * 1024, 5), keys.signing.get());
  store->run(v1.bytes);
  DeviceThread device(fleet, gateway.port, codePush(keys, store));

  device.connect();
  std::string codeId;
  gateway.acceptDevice(codeId);
  gateway.send(v2.offer());
  RawFrame keep;
  auto result = gateway.serve(v2, keep, SIZE_MAX, 2);  // the second answer has a flipped bit
  REQUIRE(result);
  CHECK(result->status == protocol::CodeResultStatus::kFailed);
  CHECK(std::string(result->reason).starts_with("corrupt chunk "));
  auto failed = device.waitEvent(device::CodeEvent::Kind::kFailed);
  REQUIRE(failed);
  CHECK(failed->reason == std::string(result->reason));
  CHECK(device.onLoop(
      [&] { return store->installs == 0 && store->current == v1.bytes && store->sha == v1.sha; }));
  CHECK_FALSE(device.heardAny(device::CodeEvent::Kind::kInstalled));
}

TEST_CASE("code push: corruptFirstFetch fails the first transfer only; the next offer installs") {
  TestFleet fleet;
  Keys keys;
  GatewayPeer gateway(fleet);
  auto store = std::make_shared<MemoryCodeStore>();
  auto options = codePush(keys, store);
  options.corruptFirstFetch = true;
  DeviceThread device(fleet, gateway.port, options);
  Version v1(program(30 * 1024, 6), keys.signing.get());

  device.connect();
  std::string codeId;
  gateway.acceptDevice(codeId);
  gateway.send(v1.offer());
  RawFrame keep;
  auto result = gateway.serve(v1, keep);
  REQUIRE(result);
  CHECK(result->status == protocol::CodeResultStatus::kFailed);
  CHECK(std::string(result->reason) == "corrupt chunk " + hex(v1.manifest.chunks[0].sha));
  CHECK(device.onLoop([&] { return store->installs; }) == 0);

  // Offered again (as after `code resume`): this time it installs.
  gateway.send(v1.offer());
  RawFrame keep2;
  auto second = gateway.serve(v1, keep2);
  REQUIRE(second);
  CHECK(second->status == protocol::CodeResultStatus::kInstalled);
  CHECK(device.onLoop([&] { return store->current == v1.bytes; }));
}

TEST_CASE("code push: a bad signature is reported failed before anything is fetched") {
  TestFleet fleet;
  Keys keys;
  Keys otherFleet;
  GatewayPeer gateway(fleet);
  auto store = std::make_shared<MemoryCodeStore>();
  DeviceThread device(fleet, gateway.port, codePush(keys, store));
  Version forged(program(10 * 1024, 7), otherFleet.signing.get());
  Version good(program(10 * 1024, 7), keys.signing.get());

  device.connect();
  std::string codeId;
  gateway.acceptDevice(codeId);
  gateway.send(forged.offer());
  RawFrame keep;
  auto result = gateway.expectResult(keep);  // a GET first would fail here
  CHECK(result.status == protocol::CodeResultStatus::kFailed);
  CHECK(result.reason == "bad signature");

  // The right key's signature with one bit flipped: also refused.
  auto offer = good.offer();
  offer.signature[0] ^= 1;
  gateway.send(offer);
  RawFrame keep2;
  auto tampered = gateway.expectResult(keep2);
  CHECK(tampered.status == protocol::CodeResultStatus::kFailed);
  CHECK(tampered.reason == "bad signature");
  CHECK(device.onLoop([&] { return store->installs == 0 && !store->sha; }));
}

TEST_CASE("code push: a normal offer may be deferred, a mandatory one is installed anyway") {
  TestFleet fleet;
  Keys keys;
  GatewayPeer gateway(fleet);
  auto store = std::make_shared<MemoryCodeStore>();
  auto options = codePush(keys, store);
  std::atomic<int> asked{0};
  std::atomic<int> askedMandatory{0};
  // Runs on the device thread: it only counts (Catch2 checks stay on the test thread).
  options.deferUpdate = [&](const device::CodeOfferInfo& offer) -> std::optional<std::string> {
    ++asked;
    if (offer.mandatory) ++askedMandatory;
    return "new code";
  };
  DeviceThread device(fleet, gateway.port, options);
  Version v1(program(12 * 1024, 8), keys.signing.get());

  device.connect();
  std::string codeId;
  gateway.acceptDevice(codeId);
  gateway.send(v1.offer(false));
  RawFrame keep;
  auto deferred = gateway.expectResult(keep);
  CHECK(deferred.status == protocol::CodeResultStatus::kDeferred);
  CHECK(deferred.reason == "new code");
  CHECK(asked.load() == 1);
  auto event = device.waitEvent(device::CodeEvent::Kind::kDeferred);
  REQUIRE(event);
  CHECK(event->reason == "new code");

  gateway.send(v1.offer(true));
  RawFrame keep2;
  auto result = gateway.serve(v1, keep2);
  REQUIRE(result);
  CHECK(result->status == protocol::CodeResultStatus::kInstalled);
  CHECK(asked.load() == 1);  // a mandatory offer does not even ask
  CHECK(askedMandatory.load() == 0);
  CHECK(device.onLoop([&] { return store->current == v1.bytes; }));
}

TEST_CASE("code push: an empty CODE_DATA drops the transfer; the next offer fetches the rest") {
  TestFleet fleet;
  Keys keys;
  GatewayPeer gateway(fleet);
  auto store = std::make_shared<MemoryCodeStore>();
  DeviceThread device(fleet, gateway.port, codePush(keys, store));
  Version v1(program(64 * 1024, 9), keys.signing.get());

  device.connect();
  std::string codeId;
  gateway.acceptDevice(codeId);
  gateway.send(v1.offer());
  RawFrame keep;
  REQUIRE_FALSE(gateway.serve(v1, keep, 2));
  uint64_t first = gateway.served;
  // Withdrawn: the device stops asking, reports nothing, keeps what it has.
  gateway.send(protocol::CodeData{v1.sha, 0, {}});
  auto superseded = device.waitEvent(device::CodeEvent::Kind::kSuperseded);
  REQUIRE(superseded);
  CHECK(superseded->offer.code == v1.sha);
  CHECK_FALSE(device.onLoop([&] { return device.client().codeTransferActive(); }));
  // Its remaining GETs (sent before the withdrawal) are read; after them, silence: no new GET
  // and no CODE_RESULT.
  while (auto f = gateway.next(200ms)) {
    INFO("frame type " << int(f->type));
    CHECK(f->as<protocol::CodeGet>());
  }
  CHECK(device.onLoop([&] { return store->installs; }) == 0);

  // Offered again: only the rest is fetched.
  gateway.served = 0;
  gateway.send(v1.offer());
  auto result = gateway.serve(v1, keep);
  REQUIRE(result);
  CHECK(result->status == protocol::CodeResultStatus::kInstalled);
  CHECK(gateway.served == v1.bytes.size() - first);
}

TEST_CASE("code push: a new offer of another code replaces the transfer under way") {
  TestFleet fleet;
  Keys keys;
  GatewayPeer gateway(fleet);
  auto store = std::make_shared<MemoryCodeStore>();
  DeviceThread device(fleet, gateway.port, codePush(keys, store));
  Version v1(program(64 * 1024, 10), keys.signing.get());
  Version v2(program(16 * 1024, 11), keys.signing.get());

  device.connect();
  std::string codeId;
  gateway.acceptDevice(codeId);
  gateway.send(v1.offer());
  RawFrame keep;
  REQUIRE_FALSE(gateway.serve(v1, keep, 1));
  // The gateway drops v1's unanswered GETs and offers v2.
  while (gateway.next(100ms)) {
  }
  gateway.send(v2.offer());
  auto result = gateway.serve(v2, keep);
  REQUIRE(result);
  CHECK(result->code == v2.sha);
  CHECK(result->status == protocol::CodeResultStatus::kInstalled);
  CHECK(device.onLoop([&] { return store->current == v2.bytes; }));
}

TEST_CASE("code push: a transfer whose GETs go unanswered ends as failed, not silently") {
  TestFleet fleet;
  Keys keys;
  GatewayPeer gateway(fleet);
  auto store = std::make_shared<MemoryCodeStore>();
  auto options = codePush(keys, store);
  options.stallTimeout = 2s;
  DeviceThread device(fleet, gateway.port, options);
  Version v1(program(30 * 1024, 14), keys.signing.get());

  device.connect();
  std::string codeId;
  gateway.acceptDevice(codeId);
  gateway.send(v1.offer());
  RawFrame keep;
  REQUIRE_FALSE(gateway.serve(v1, keep, 1));
  // The gateway goes quiet: the GETs are read and never answered.
  auto started = Clock::now();
  std::optional<protocol::CodeResult> result;
  while (!result && Clock::now() - started < kDeadline) {
    auto f = gateway.next(100ms);
    if (!f) continue;
    keep = std::move(*f);
    result = keep.as<protocol::CodeResult>();
    if (!result) CHECK(keep.as<protocol::CodeGet>());
  }
  REQUIRE(result);
  CHECK(Clock::now() - started >= 1s);
  CHECK(result->status == protocol::CodeResultStatus::kFailed);
  CHECK(std::string(result->reason).starts_with("transfer stalled"));
  CHECK_FALSE(device.onLoop([&] { return device.client().codeTransferActive(); }));
  CHECK(device.onLoop([&] { return store->installs; }) == 0);
}

TEST_CASE("code push: a device without a verify key does not set the capability") {
  TestFleet fleet;
  Keys keys;
  GatewayPeer gateway(fleet);
  auto store = std::make_shared<MemoryCodeStore>();
  device::CodePushOptions options;
  options.store = store;  // a store but no key: code push stays off
  DeviceThread device(fleet, gateway.port, options);
  CHECK_FALSE(device.onLoop([&] { return device.client().codePushEnabled(); }));

  device.connect();
  std::string codeId;
  protocol::Hello hello = gateway.acceptDevice(codeId);
  CHECK(hello.capabilities == 0);
  CHECK(codeId == "plain-device");
  // An offer sent anyway is ignored: no GET, no result, the link stays up.
  Version v1(program(4 * 1024, 12), keys.signing.get());
  gateway.send(v1.offer());
  CHECK_FALSE(gateway.next(300ms));
  CHECK(device.onlines.load() == 1);
  CHECK(device.offlines.load() == 0);
}

TEST_CASE("code push with the FileCodeStore: a restarted device resumes and then runs the code") {
  TestFleet fleet;
  Keys keys;
  GatewayPeer gateway(fleet);
  testing::TempDir state;
  Version v1(program(64 * 1024, 13), keys.signing.get());
  uint64_t first = 0;
  {
    auto store = device::FileCodeStore::open(state.path());
    REQUIRE(store);
    DeviceThread device(fleet, gateway.port, codePush(keys, std::move(*store)));
    device.connect();
    std::string codeId;
    gateway.acceptDevice(codeId);
    gateway.send(v1.offer());
    RawFrame keep;
    REQUIRE_FALSE(gateway.serve(v1, keep, 2));
    first = gateway.served;
    REQUIRE(waitUntil([&] { return device.fetched() == first; }, kDeadline));
  }  // the device process ends mid-transfer
  gateway.closeLink();
  auto store = device::FileCodeStore::open(state.path());
  REQUIRE(store);
  std::shared_ptr<device::FileCodeStore> reopened = std::move(*store);
  CHECK_FALSE(reopened->runningCode());
  DeviceThread device(fleet, gateway.port, codePush(keys, reopened));
  device.connect();
  std::string codeId;
  gateway.acceptDevice(codeId);
  gateway.served = 0;
  gateway.send(v1.offer());
  RawFrame keep;
  auto result = gateway.serve(v1, keep);
  REQUIRE(result);
  CHECK(result->status == protocol::CodeResultStatus::kInstalled);
  CHECK(gateway.served == v1.bytes.size() - first);
  CHECK(device.onLoop([&] { return reopened->runningCode() == v1.sha; }));
}

TEST_CASE(
    "code push through BlockingDevice: its code events arrive in order on the caller's thread") {
  TestFleet fleet;
  Keys keys;
  GatewayPeer gateway(fleet);
  fleet.enroll("dev-1");
  testing::TempDir state;
  auto store = device::FileCodeStore::open(state.path());
  REQUIRE(store);
  device::BlockingDeviceConfig config;
  config.options.gateway = "127.0.0.1:" + std::to_string(gateway.port);
  config.options.codePush = codePush(keys, std::move(*store));
  config.caFile = fleet.home().caCert().string();
  config.certFile = fleet.home().deviceCert("dev-1").string();
  config.keyFile = fleet.home().deviceKey("dev-1").string();
  auto created = device::BlockingDevice::create(config);
  REQUIRE(created);
  auto& dev = **created;
  CHECK(dev.codePushEnabled());
  Version v1(program(20 * 1024, 15), keys.signing.get());

  // connect() waits for WELCOME, which the test thread sends: connect from another thread.
  // (Catch2 checks stay on the test thread.)
  std::atomic<bool> connected{false};
  std::thread connector([&] { connected = static_cast<bool>(dev.connect(kDeadline)); });
  std::string codeId;
  protocol::Hello hello = gateway.acceptDevice(codeId);
  connector.join();
  CHECK(connected.load());
  CHECK(hello.capabilities == protocol::kCapCodePush);
  gateway.send(v1.offer(true, 12));
  RawFrame keep;
  auto result = gateway.serve(v1, keep);
  REQUIRE(result);
  CHECK(result->status == protocol::CodeResultStatus::kInstalled);

  auto offered = dev.nextCodeEvent(kDeadline);
  REQUIRE(offered);
  CHECK(offered->kind == device::CodeEvent::Kind::kOffered);
  CHECK(offered->offer.code == v1.sha);
  CHECK(offered->offer.deployment == 12);
  CHECK(offered->offer.mandatory);
  CHECK(offered->offer.size == v1.bytes.size());
  auto installed = dev.nextCodeEvent(kDeadline);
  REQUIRE(installed);
  CHECK(installed->kind == device::CodeEvent::Kind::kInstalled);
  CHECK(installed->bytesFetched == v1.bytes.size());
  CHECK_FALSE(dev.nextCodeEvent(std::chrono::milliseconds(0)));
  dev.disconnect();
}
