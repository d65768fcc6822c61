#include "tools/impbench/code_bench.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_set>

#include "bus/fleet/descriptors.h"
#include "bus/fleet/release.h"
#include "bus/topics/topic_scheme.h"
#include "gateway/base/code/hex.h"
#include "gateway/base/code/manifest.h"
#include "gateway/base/code/sha256.h"
#include "gateway/base/net/event_loop.h"
#include "gateway/base/net/socket.h"
#include "gateway/base/net/tls_context.h"
#include "gateway/base/pki/code_signing.h"
#include "gateway/device/code_store.h"
#include "gateway/device/device_client.h"
#include "tools/impbench/bench_fleet.h"
#include "tools/impbench/impgate_server.h"
#include "tools/impbench/interrupt.h"
#include "tools/impbench/mqtt_agent.h"
#include "tools/impbench/process_stats.h"
#include "tools/impbench/progress.h"
#include "tools/impctl/fleet_bus.h"
#include "tools/testbed/free_port.h"
#include "tools/testbed/mosquitto_broker.h"
#include "tools/testbed/temp_dir.h"

namespace impgate::bench {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
namespace mqtt = bus::mqtt;

const std::string kPrefix = "imp";
const std::string kGroup = "default";  // devices without an OU or an assignment are in it
constexpr milliseconds kConnectDeadline{120000};
constexpr milliseconds kReachDeadline{30000};
// A phase that made no progress for this long has stalled.
constexpr milliseconds kStallDeadline{30000};
constexpr milliseconds kRoundTripLost{2000};
// impgate refreshes its code metrics once a second.
constexpr milliseconds kMetricsPeriod{1000};
constexpr double kQuickMinRatio = 0.15;

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

std::string utcNow() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

int64_t nowMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- the code versions ---------------------------------------------------------------------

// `size` bytes of text lines ("NNNNNN <random hex>\n", 72 bytes each, the last one cut), so that
// "one line inserted in the middle" means what it says for a program's source.
std::vector<uint8_t> makeCode(std::size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string text;
  text.reserve(size + 80);
  static const char* digits = "0123456789abcdef";
  for (std::size_t line = 0; text.size() < size; ++line) {
    char number[16];
    std::snprintf(number, sizeof number, "%06zu ", line);
    text += number;
    for (int i = 0; i < 64; ++i) text += digits[rng() & 15];
    text += '\n';
  }
  text.resize(size);
  return {text.begin(), text.end()};
}

// `code` with one line inserted at the first line start at or after the middle.
std::vector<uint8_t> insertLine(const std::vector<uint8_t>& code) {
  std::size_t at = code.size() / 2;
  while (at < code.size() && code[at - 1] != '\n') ++at;
  const std::string line = "inserted by impbench: a one-line change in the middle\n";
  std::vector<uint8_t> out(code.begin(), code.begin() + static_cast<long>(at));
  out.insert(out.end(), line.begin(), line.end());
  out.insert(out.end(), code.begin() + static_cast<long>(at), code.end());
  return out;
}

// ---- devices: an in-memory CodeStore -------------------------------------------------------

// One copy of each complete version, shared by every store that runs it (5000 devices x 64 KiB
// would otherwise be held once per device).
struct CodeVersion {
  code::Sha256 sha{};
  std::vector<uint8_t> bytes;
  code::Manifest manifest;
};

class CodeLibrary {
 public:
  std::shared_ptr<const CodeVersion> intern(const code::Sha256& sha, std::vector<uint8_t>&& bytes,
                                            const code::Manifest& manifest) {
    auto& slot = versions_[sha];
    if (!slot)
      slot = std::make_shared<const CodeVersion>(CodeVersion{sha, std::move(bytes), manifest});
    return slot;
  }

 private:
  std::map<code::Sha256, std::shared_ptr<const CodeVersion>> versions_;
};

// A device's code in memory: what it runs (shared through the library) and one partial
// download. The benchmark measures the push, not the device's disk.
class MemoryCodeStore final : public device::CodeStore {
 public:
  MemoryCodeStore(CodeLibrary& library, std::shared_ptr<const CodeVersion> running)
      : library_(library), running_(std::move(running)) {}

  std::optional<code::Sha256> runningCode() override {
    if (!running_) return std::nullopt;
    return running_->sha;
  }
  code::Manifest runningManifest() override {
    return running_ ? running_->manifest : code::Manifest{};
  }
  device::Status readRunning(uint32_t offset, std::span<uint8_t> out) override {
    if (!running_ || offset + out.size() > running_->bytes.size())
      return bad("read past the running code");
    std::memcpy(out.data(), running_->bytes.data() + offset, out.size());
    return {};
  }
  device::Result<std::vector<device::CodeRange>> openPartial(const code::Sha256& sha,
                                                             uint32_t size) override {
    if (!partialCode_ || *partialCode_ != sha || partial_.size() != size) {
      partialCode_ = sha;
      partial_.assign(size, 0);
      held_.clear();
    }
    return held_;
  }
  device::Status writePartial(const code::Sha256& sha, uint32_t offset,
                              std::span<const uint8_t> bytes) override {
    if (partialCode_ != sha || offset + bytes.size() > partial_.size())
      return bad("write outside the partial");
    std::memcpy(partial_.data() + offset, bytes.data(), bytes.size());
    return {};
  }
  device::Status readPartial(const code::Sha256& sha, uint32_t offset,
                             std::span<uint8_t> out) override {
    if (partialCode_ != sha || offset + out.size() > partial_.size())
      return bad("read outside the partial");
    std::memcpy(out.data(), partial_.data() + offset, out.size());
    return {};
  }
  device::Status markHeld(const code::Sha256& sha, device::CodeRange range) override {
    if (partialCode_ != sha) return bad("no such partial");
    held_.push_back(range);
    return {};
  }
  void discardPartial(const code::Sha256& sha) override {
    if (partialCode_ == sha) reset();
  }
  device::Status install(const code::Sha256& sha, const code::Manifest& manifest) override {
    if (partialCode_ != sha) return bad("no such partial");
    running_ = library_.intern(sha, std::move(partial_), manifest);
    reset();
    return {};
  }

 private:
  static device::Error bad(const char* what) { return {device::ErrorCode::kStorage, what}; }
  void reset() {
    partialCode_.reset();
    std::vector<uint8_t>().swap(partial_);
    held_.clear();
  }

  CodeLibrary& library_;
  std::shared_ptr<const CodeVersion> running_;
  std::optional<code::Sha256> partialCode_;
  std::vector<uint8_t> partial_;
  std::vector<device::CodeRange> held_;
};

// ---- impgate's /metrics --------------------------------------------------------------------

// GET /metrics from 127.0.0.1:port (blocking, 2 s timeout): metric name -> value for the
// unlabelled samples. Empty on failure.
std::map<std::string, double> fetchMetrics(uint16_t port) {
  std::map<std::string, double> values;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return values;
  timeval timeout{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buffer[16384];
      for (;;) {
        ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        response.append(buffer, static_cast<std::size_t>(n));
      }
    }
  }
  ::close(fd);
  std::istringstream lines(response);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#' || line.find('{') != std::string::npos) continue;
    auto space = line.find(' ');
    if (space == std::string::npos) continue;
    try {
      values[line.substr(0, space)] = std::stod(line.substr(space + 1));
    } catch (...) {
    }
  }
  return values;
}

// Samples impgate_code_transfers on its own thread (impgate updates it once a second) and
// keeps the peak, so the devices' loop is never blocked by an HTTP request.
class TransferSampler {
 public:
  explicit TransferSampler(uint16_t port) : thread_([this, port] { run(port); }) {}
  ~TransferSampler() {
    stop_ = true;
    thread_.join();
  }
  long peak() const { return peak_.load(); }

 private:
  void run(uint16_t port) {
    while (!stop_) {
      auto values = fetchMetrics(port);
      if (auto it = values.find("impgate_code_transfers"); it != values.end()) {
        long v = static_cast<long>(it->second);
        long seen = peak_.load();
        while (v > seen && !peak_.compare_exchange_weak(seen, v)) {
        }
      }
      std::this_thread::sleep_for(milliseconds(100));
    }
  }
  std::atomic<bool> stop_{false};
  std::atomic<long> peak_{-1};
  std::thread thread_;
};

// The run with the median devices per second (the lower one of the middle two).
template <typename Figures>
const Figures& medianRun(const std::vector<Figures>& runs) {
  std::vector<const Figures*> sorted;
  for (const auto& run : runs) sorted.push_back(&run);
  std::sort(sorted.begin(), sorted.end(), [](const Figures* a, const Figures* b) {
    return a->devicesPerSecond < b->devicesPerSecond;
  });
  return *sorted[(sorted.size() - 1) / 2];
}

double percentile(std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  std::size_t index = static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1));
  return static_cast<double>(sorted[index]) / 1000.0;
}

// The bystander: one device without code push (so no rollout offers it anything) doing
// request/response round trips with its own agent, both on a thread and EventLoop of their own,
// so that what it measures is impgate and the broker, not impbench's loop that serves
// thousands of devices during a push. A request goes out at most every `every`, the next only
// after the answer (or 2 s: lost).
class Bystander {
 public:
  Bystander(const net::TlsContext& tls, std::shared_ptr<device::DeviceCredentials> credentials,
            std::string gateway, net::Endpoint broker, const bus::TopicScheme& topics,
            const std::string& id, milliseconds every)
      : tls_(tls),
        credentials_(std::move(credentials)),
        gateway_(std::move(gateway)),
        broker_(broker),
        outFilter_(topics.prefix() + "/dev/" + id + "/out/#"),
        inTopic_(topics.deviceIn(id, "m")),
        every_(every) {}

  ~Bystander() {
    stop_ = true;
    loop_.wake();
    if (thread_.joinable()) thread_.join();
  }

  // Connects both on the bystander's thread and waits until a first round trip went through.
  bool start(std::string& error) {
    thread_ = std::thread([this] { run(); });
    auto deadline = Clock::now() + std::chrono::seconds(60);
    while (!ready_ && failure().empty() && Clock::now() < deadline && !interrupted()) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    if (!ready_) {
      error =
          "bystander: " + (failure().empty() ? std::string("not online within 60 s") : failure());
      return false;
    }
    // impgate subscribes the device's inbound topic after WELCOME, on its own time: the first
    // answers may be lost. Warm up until five round trips went through.
    begin();
    deadline = Clock::now() + std::chrono::seconds(30);
    while (samples_ < 5 && Clock::now() < deadline && !interrupted()) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    RoundTrips warmup = end();
    if (warmup.samples < 5) {
      error = "bystander: no answers from its agent within 30 s";
      return false;
    }
    return true;
  }

  void begin() {
    loop_.post([this] {
      roundTrips_.clear();
      samples_ = 0;
      lost_ = 0;
      outstanding_ = false;
      timer_ = loop_.runEvery(every_, [this] { tick(); });
    });
    loop_.wake();
  }

  RoundTrips end() {
    auto done = std::make_shared<std::promise<RoundTrips>>();
    auto result = done->get_future();
    loop_.post([this, done] {
      loop_.cancel(timer_);
      timer_ = 0;
      outstanding_ = false;
      RoundTrips figures;
      figures.samples = roundTrips_.size();
      figures.lost = lost_;
      std::sort(roundTrips_.begin(), roundTrips_.end());
      figures.p50Us = percentile(roundTrips_, 0.5);
      figures.p99Us = percentile(roundTrips_, 0.99);
      figures.maxUs = roundTrips_.empty() ? 0 : static_cast<double>(roundTrips_.back()) / 1000.0;
      done->set_value(figures);
    });
    loop_.wake();
    if (result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) return {};
    return result.get();
  }

  std::string failure() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return failure_;
  }

 private:
  void fail(const std::string& reason) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failure_.empty()) failure_ = reason;
  }

  void run() {
    bool agentReady = false, deviceReady = false;
    MqttAgent::Events events;
    events.onConnected = [&] {
      mqtt::SubscribeFilter filters[] = {{outFilter_, 0}};
      agent_->subscribe(filters);
    };
    events.onSubscribed = [&] {
      agentReady = true;
      ready_ = agentReady && deviceReady;
    };
    // The request: answer at once with the same bytes.
    events.onPublish = [this](std::string_view, std::span<const uint8_t> payload, uint8_t) {
      agent_->publish(inTopic_, payload, 0);
    };
    events.onFailed = [this](const std::string& reason) {
      if (!stop_) fail("agent: " + reason);
    };
    agent_ =
        std::make_unique<MqttAgent>(loop_, broker_, "impbench-bystander-agent", std::move(events));
    device::DeviceOptions options;
    options.gateway = gateway_;
    options.codeId = "bystander";
    options.connectTimeout = std::chrono::seconds(60);
    device::DeviceClient::Handlers handlers;
    handlers.onOnline = [&](const protocol::Welcome&) {
      deviceReady = true;
      ready_ = agentReady && deviceReady;
    };
    handlers.onOffline = [this](const std::string& reason) {
      if (!stop_) fail("device: " + reason);
    };
    handlers.onMessage = [this](std::string_view, std::span<const uint8_t>) { onReply(); };
    device_ = std::make_unique<device::DeviceClient>(loop_, tls_, credentials_, std::move(options),
                                                     std::move(handlers));
    agent_->connect();
    device_->connect();
    while (!stop_) (void)loop_.runUntil([this] { return stop_.load(); }, milliseconds(1000));
    if (timer_) loop_.cancel(timer_);
    device_->disconnect();
    agent_->disconnect();
    (void)loop_.runUntil([] { return false; }, milliseconds(100));
    device_.reset();
    agent_.reset();
  }

  void tick() {
    auto now = Clock::now();
    if (outstanding_) {
      if (now - requestSent_ < kRoundTripLost) return;
      ++lost_;
    }
    const uint8_t request[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    outstanding_ = device_->send("m", request, false) == device::SendError::kNone;
    requestSent_ = now;
  }

  void onReply() {
    if (!outstanding_) return;
    outstanding_ = false;
    roundTrips_.push_back(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - requestSent_).count());
    samples_ = roundTrips_.size();
  }

  const net::TlsContext& tls_;
  std::shared_ptr<device::DeviceCredentials> credentials_;
  std::string gateway_;
  net::Endpoint broker_;
  std::string outFilter_, inTopic_;
  milliseconds every_;
  net::EventLoop loop_;
  std::thread thread_;
  std::atomic<bool> stop_{false}, ready_{false};
  std::atomic<std::size_t> samples_{0};
  mutable std::mutex mutex_;
  std::string failure_;
  // Loop thread only.
  std::unique_ptr<MqttAgent> agent_;
  std::unique_ptr<device::DeviceClient> device_;
  net::EventLoop::TimerId timer_ = 0;
  bool outstanding_ = false;
  Clock::time_point requestSent_;
  std::vector<int64_t> roundTrips_;
  std::size_t lost_ = 0;
};

// ---- the run -------------------------------------------------------------------------------

class Bench {
 public:
  Bench(const CodeBenchOptions& options, const BenchFleet& fleet, const net::TlsContext& tls,
        testbed::MosquittoBroker& broker, ImpgateServer& impgate, uint16_t metricsPort,
        EVP_PKEY* signingKey, std::shared_ptr<EVP_PKEY> verifyKey, CodeReport& report)
      : options_(options),
        fleet_(fleet),
        tls_(tls),
        broker_(broker),
        impgate_(impgate),
        metricsPort_(metricsPort),
        signingKey_(signingKey),
        verifyKey_(std::move(verifyKey)),
        report_(report),
        topics_(kPrefix),
        count_(options.devices),
        bystanderId_(fleet.id(options.devices)) {}

  bool run() {
    std::string error;
    v1_ = makeCode(options_.codeBytes, 1);
    v2_ = makeCode(options_.codeBytes, 2);
    v2b_ = makeCode(options_.codeBytes, 4);
    v3_ = insertLine(v2_);
    if (!publishVersions(error) || !connectAgent(error) || !connectDevices(error) ||
        !waitReachable(error)) {
      report_.error = error;
      return false;
    }
    for (unsigned r = 0; r < options_.repeat; ++r) {
      report_.wireRuns.emplace_back();
      runWire(report_.wireRuns.back());
      if (!report_.wireRuns.back().error.empty() || interrupted()) {
        report_.wire = report_.wireRuns.back();
        return false;
      }
    }
    report_.wire = medianRun(report_.wireRuns);
    progress("bystander: round trips with nothing else running, %.1f s",
             seconds(options_.idleLatency));
    bystander_->begin();
    (void)loop_.runUntil([] { return interrupted(); }, options_.idleLatency);
    report_.bystanderIdle = bystander_->end();
    logRoundTrips("idle", report_.bystanderIdle);
    // Repeated pushes alternate two versions that share no chunk with each other or with v1,
    // the last one v2, so that the delta that follows changes one line of what devices run.
    bystander_->begin();
    bool pushed = true;
    for (unsigned r = 0; r < options_.repeat && pushed; ++r) {
      bool last = (options_.repeat - 1 - r) % 2 == 0;
      report_.pushRuns.emplace_back();
      runPush(report_.pushRuns.back(), r + 1, last ? v2_ : v2b_, true);
      pushed = report_.pushRuns.back().error.empty() && !interrupted();
    }
    report_.bystanderPush = bystander_->end();
    report_.push = pushed ? medianRun(report_.pushRuns) : report_.pushRuns.back();
    logRoundTrips("during the push", report_.bystanderPush);
    if (!bystander_->failure().empty()) {
      report_.error = "bystander: " + bystander_->failure();
      return false;
    }
    if (!report_.push.error.empty() || interrupted()) return false;
    runPush(report_.delta, options_.repeat + 1, v3_, false);
    return report_.delta.error.empty();
  }

  void leave() {
    bystander_.reset();
    for (auto& client : clients_) client->disconnect();
    if (agent_) agent_->disconnect();
    (void)loop_.runUntil([] { return false; }, milliseconds(200));
  }

 private:
  // -- setup --

  bool publishVersions(std::string& error) {
    impctl::BusOptions busOptions;
    busOptions.broker = broker_.uri();
    busOptions.prefix = kPrefix;
    auto bus = impctl::FleetBus::connect(busOptions);
    if (!bus) {
      error = bus.error().message;
      return false;
    }
    bus_ = std::move(*bus);
    std::vector<impctl::RetainedMessage> messages;
    for (const auto* code : {&v1_, &v2_, &v2b_, &v3_}) {
      auto version =
          bus::fleet::describeVersion(*code, signingKey_, "impbench", "impbench", nowMs());
      for (auto& p : bus::fleet::versionPublications(topics_, *code, version)) {
        messages.push_back({std::move(p.topic), std::move(p.payload)});
      }
    }
    progress("publishing v1, v2, v2b and v3 (%zu retained messages: chunks and descriptors)",
             messages.size());
    if (auto published = bus_->publishRetained(messages); !published) {
      error = "publishing the versions: " + published.error().message;
      return false;
    }
    return true;
  }

  bool connectAgent(std::string& error) {
    auto endpoint = net::parseEndpoint("127.0.0.1:" + std::to_string(broker_.port()));
    if (!endpoint) {
      error = endpoint.error().message;
      return false;
    }
    MqttAgent::Events events;
    events.onConnected = [this] {
      // The filters hold views: the strings must outlive the call.
      // Not the devices' code states: thousands of them during a push would load the thread
      // that runs the devices; they are read back once the push is over.
      const std::string rollouts = topics_.allRollouts();
      mqtt::SubscribeFilter filters[] = {{rollouts, 1}};
      agent_->subscribe(filters);
    };
    events.onSubscribed = [this] { agentSubscribed_ = true; };
    events.onPublish = [this](std::string_view topic, std::span<const uint8_t> payload, uint8_t) {
      onAgentPublish(topic, payload);
    };
    events.onFailed = [this](const std::string& reason) { agentFailure_ = reason; };
    agent_ =
        std::make_unique<MqttAgent>(loop_, *endpoint, "impbench-code-agent", std::move(events));
    agent_->connect();
    bool ok =
        loop_.runUntil([&] { return agentSubscribed_ || !agentFailure_.empty() || interrupted(); },
                       milliseconds(30000));
    if (!ok || !agentSubscribed_) {
      error = "agent: " +
              (agentFailure_.empty() ? std::string("no SUBACK within 30 s") : agentFailure_);
      return false;
    }
    return true;
  }

  bool connectDevices(std::string& error) {
    std::vector<net::Endpoint> sources;
    for (const auto& s : options_.sources) {
      auto ep = net::parseEndpoint(s + ":0");
      if (!ep) {
        error = "--sources: " + ep.error().message;
        return false;
      }
      sources.push_back(*ep);
    }
    auto v1 =
        library_.intern(code::sha256(v1_), std::vector<uint8_t>(v1_), code::buildManifest(v1_));
    const std::string gateway = "127.0.0.1:" + std::to_string(impgate_.port());
    online_.assign(count_, 0);
    active_.assign(count_, 0);
    installedEpoch_.assign(count_, 0);
    received_.assign(count_, 0);
    inFlight_.assign(count_, 0);
    sentMessages_.assign(count_, 0);
    reached_.assign(count_, 0);
    clients_.reserve(count_);
    for (std::size_t i = 0; i < count_; ++i) {
      device::DeviceOptions options;
      options.gateway = gateway;
      options.reconnect = false;  // a lost device is reported, not hidden by a reconnect
      options.connectTimeout = std::chrono::seconds(120);
      if (!sources.empty()) options.source = sources[i % sources.size()];
      options.codePush.verifyKey = verifyKey_;
      options.codePush.store = std::make_shared<MemoryCodeStore>(library_, v1);
      device::DeviceClient::Handlers handlers;
      handlers.onOnline = [this, i](const protocol::Welcome&) {
        if (!online_[i]) ++onlineCount_;
        online_[i] = 1;
      };
      handlers.onOffline = [this, i](const std::string& reason) {
        if (leaving_) return;
        if (online_[i]) --onlineCount_;
        online_[i] = 0;
        ++deviceFailures_;
        lastFailure_ = fleet_.id(i) + ": " + reason;
      };
      handlers.onMessage = [this, i](std::string_view, std::span<const uint8_t> payload) {
        onDeviceMessage(i, payload.size());
      };
      handlers.onCode = [this, i](const device::CodeEvent& event) { onCode(i, event); };
      clients_.push_back(std::make_unique<device::DeviceClient>(
          loop_, tls_, fleet_.credentials(i), std::move(options), std::move(handlers)));
    }
    progress("connecting %zu devices running v1 (%s...) and the bystander at %.0f/s", count_,
             code::toHex(code::sha256(v1_)).substr(0, 12).c_str(), options_.connectRate);
    auto started = Clock::now();
    std::size_t next = 0;
    auto interval = std::chrono::duration<double>(1.0 / options_.connectRate);
    auto pacer = loop_.runEvery(milliseconds(10), [&] {
      auto due = static_cast<std::size_t>(seconds(Clock::now() - started) / interval.count()) + 1;
      while (next < count_ && next < due) clients_[next++]->connect();
    });
    bool ok = loop_.runUntil(
        [&] { return interrupted() || deviceFailures_ > 0 || onlineCount_ == count_; },
        kConnectDeadline + milliseconds(static_cast<long>(1000.0 * count_ / options_.connectRate)));
    loop_.cancel(pacer);
    if (!ok || onlineCount_ != count_) {
      error = "devices: " + std::to_string(onlineCount_) + "/" + std::to_string(count_) +
              " online; last failure: " + lastFailure_;
      return false;
    }
    report_.secondsToAllOnline = seconds(Clock::now() - started);
    progress("%zu devices online in %.1f s", count_, report_.secondsToAllOnline);
    for (std::size_t i = 0; i < count_; ++i) {
      inTopics_.push_back(topics_.deviceIn(fleet_.id(i), "m"));
    }
    bystander_ = std::make_unique<Bystander>(tls_, fleet_.credentials(count_), gateway,
                                             net::Endpoint(*brokerEndpoint()), topics_,
                                             bystanderId_, options_.bystanderEvery);
    return bystander_->start(error);
  }

  // impgate subscribes a device's inbound topic after WELCOME, on its own time: probe until an
  // agent message reached every device.
  bool waitReachable(std::string& error) {
    phase_ = Phase::kProbe;
    const uint8_t probe[1] = {0};
    auto all = [&] { return reachedCount_ == count_; };
    auto deadline = Clock::now() + kReachDeadline;
    while (!all() && Clock::now() < deadline && !interrupted()) {
      for (std::size_t i = 0; i < count_; ++i) {
        if (!reached_[i]) agent_->publish(inTopics_[i], probe, 0);
      }
      (void)loop_.runUntil(all, milliseconds(500));
    }
    // Late duplicates of the probes.
    (void)loop_.runUntil([] { return false; }, milliseconds(300));
    phase_ = Phase::kNone;
    if (!all()) {
      error = "agent messages did not reach every device within 30 s (" +
              std::to_string(reachedCount_) + "/" + std::to_string(count_) + ")";
      return false;
    }
    return true;
  }

  // -- the wire limit --

  void runWire(WireFigures& wire) {
    wire.ran = true;
    wire.devices = count_;
    wire.bytesPerDevice = options_.codeBytes;
    std::size_t perDevice =
        (options_.codeBytes + options_.wireMessageBytes - 1) / options_.wireMessageBytes;
    wire.messages = perDevice * count_;
    std::vector<uint8_t> payload(options_.wireMessageBytes);
    std::mt19937 rng(7);
    for (auto& b : payload) b = static_cast<uint8_t>(rng());
    progress("wire: %zu bytes to each device in %zu MSG frames of up to %zu bytes (QoS 1)",
             options_.codeBytes, perDevice, options_.wireMessageBytes);
    std::fill(received_.begin(), received_.end(), 0);
    std::fill(inFlight_.begin(), inFlight_.end(), 0);
    std::fill(sentMessages_.begin(), sentMessages_.end(), 0);
    wireDone_ = 0;
    wireBytes_ = 0;
    wireMessages_ = 0;
    auto sendNext = [&, perDevice](std::size_t i) {
      while (inFlight_[i] < options_.wireWindow && sentMessages_[i] < perDevice) {
        std::size_t offset = sentMessages_[i] * options_.wireMessageBytes;
        std::size_t length = std::min(options_.wireMessageBytes, options_.codeBytes - offset);
        agent_->publish(inTopics_[i], std::span<const uint8_t>(payload.data(), length), 1);
        ++sentMessages_[i];
        ++inFlight_[i];
      }
    };
    wireRefill_ = sendNext;
    auto gwBefore = sampleProcess(impgate_.pid());
    auto brokerBefore = sampleProcess(broker_.pid());
    auto benchBefore = threadCpuTime();
    phase_ = Phase::kWire;
    auto started = Clock::now();
    lastProgress_ = started;
    for (std::size_t i = 0; i < count_; ++i) sendNext(i);
    bool ok = loop_.runUntil(
        [&] {
          return wireDone_ == count_ || interrupted() || deviceFailures_ > 0 ||
                 !agentFailure_.empty() || Clock::now() - lastProgress_ > kStallDeadline;
        },
        options_.phaseLimit);
    auto ended = lastProgress_;
    phase_ = Phase::kNone;
    wireRefill_ = nullptr;
    auto gwAfter = sampleProcess(impgate_.pid());
    auto brokerAfter = sampleProcess(broker_.pid());
    wire.benchCpuSeconds = seconds(threadCpuTime() - benchBefore);
    wire.received = wireMessages_;
    wire.bytesReceived = wireBytes_;
    wire.seconds = seconds(ended - started);
    if (gwBefore && gwAfter) wire.gatewayCpuSeconds = seconds(gwAfter->cpu - gwBefore->cpu);
    if (brokerBefore && brokerAfter)
      wire.brokerCpuSeconds = seconds(brokerAfter->cpu - brokerBefore->cpu);
    if (!ok || wireDone_ != count_) {
      wire.error = "wire: " + std::to_string(wireDone_) + "/" + std::to_string(count_) +
                   " devices got every byte; " + failureText();
      return;
    }
    wire.devicesPerSecond = wire.seconds > 0 ? static_cast<double>(count_) / wire.seconds : 0;
    progress("wire: %zu devices x %zu bytes in %.2f s = %.0f devices/s (%.1f MB/s)", count_,
             options_.codeBytes, wire.seconds, wire.devicesPerSecond,
             static_cast<double>(wireBytes_) / wire.seconds / 1e6);
  }

  void onDeviceMessage(std::size_t i, std::size_t bytes) {
    if (phase_ == Phase::kProbe) {
      if (!reached_[i]) {
        reached_[i] = 1;
        ++reachedCount_;
      }
      return;
    }
    if (phase_ != Phase::kWire) return;
    lastProgress_ = Clock::now();
    ++wireMessages_;
    wireBytes_ += bytes;
    received_[i] += bytes;
    if (inFlight_[i] > 0) --inFlight_[i];
    if (received_[i] >= options_.codeBytes && received_[i] - bytes < options_.codeBytes)
      ++wireDone_;
    if (wireRefill_) wireRefill_(i);
  }

  // -- code push --

  void runPush(PushFigures& push, uint32_t deployment, const std::vector<uint8_t>& code,
               bool withBystander) {
    push.ran = true;
    push.devices = count_;
    push.codeSize = static_cast<uint32_t>(code.size());
    target_ = code::sha256(code);
    targetHex_ = code::toHex(target_);
    ++epoch_;
    installedCount_ = 0;
    failedCount_ = 0;
    fetched_ = 0;
    copied_ = 0;
    activeCount_ = 0;
    peakActive_ = 0;
    firstOfferSeen_ = false;
    peakRollout_ = -1;
    std::fill(active_.begin(), active_.end(), 0);
    bus::fleet::DeploymentBody body;
    body.group = kGroup;
    body.deployment = deployment;
    body.code = targetHex_;
    body.size = push.codeSize;
    body.supported = {targetHex_};
    body.stages = {100};
    body.maxConcurrent = options_.maxConcurrent;
    body.haltFailures = 100;
    body.devices = static_cast<uint32_t>(count_);
    body.createdAtMs = nowMs();
    body.author = "impbench";
    body.note = deployment == 1 ? "v2" : "v3 = v2 with one line inserted";
    auto publication = bus::fleet::deploymentPublication(topics_, body, signingKey_);
    progress("deployment %u: %s (%u bytes) to %zu devices, max_concurrent %u%s", deployment,
             targetHex_.substr(0, 12).c_str(), push.codeSize, count_, options_.maxConcurrent,
             withBystander ? "; the bystander keeps doing round trips" : "");
    auto before = fetchMetrics(metricsPort_);
    auto sampler = std::make_unique<TransferSampler>(metricsPort_);
    auto gwBefore = sampleProcess(impgate_.pid());
    auto brokerBefore = sampleProcess(broker_.pid());
    auto benchBefore = threadCpuTime();
    auto started = Clock::now();
    lastProgress_ = started;
    phase_ = Phase::kPush;
    if (auto published = bus_->publishRetained(publication.topic, publication.payload);
        !published) {
      push.error = "publishing the deployment: " + published.error().message;
      phase_ = Phase::kNone;
      return;
    }
    auto report = loop_.runEvery(milliseconds(2000), [&] {
      progress("  %zu/%zu installed, %ld transferring", installedCount_, count_, activeCount_);
    });
    bool ok = loop_.runUntil(
        [&] {
          return installedCount_ + failedCount_ >= count_ || interrupted() || deviceFailures_ > 0 ||
                 !agentFailure_.empty() || Clock::now() - lastProgress_ > kStallDeadline;
        },
        options_.phaseLimit);
    loop_.cancel(report);
    auto ended = lastInstall_;
    phase_ = Phase::kNone;
    auto gwAfter = sampleProcess(impgate_.pid());
    auto brokerAfter = sampleProcess(broker_.pid());
    push.benchCpuSeconds = seconds(threadCpuTime() - benchBefore);
    if (gwBefore && gwAfter) push.gatewayCpuSeconds = seconds(gwAfter->cpu - gwBefore->cpu);
    if (brokerBefore && brokerAfter)
      push.brokerCpuSeconds = seconds(brokerAfter->cpu - brokerBefore->cpu);
    push.installed = installedCount_;
    push.failed = failedCount_;
    push.bytesFetched = fetched_;
    push.bytesCopied = copied_;
    push.peakTransfersDevices = peakActive_;
    push.seconds = seconds(ended - started);
    if (firstOfferSeen_) push.secondsToFirstOffer = seconds(firstOffer_ - started);
    push.devicesPerSecond =
        push.seconds > 0 ? static_cast<double>(installedCount_) / push.seconds : 0;
    // The node's states and its metrics trail the devices: its counters refresh once a second.
    (void)loop_.runUntil([] { return false; }, kMetricsPeriod + milliseconds(200));
    auto collectDeadline = Clock::now() + std::chrono::seconds(10);
    do {
      push.gatewayInstalled = gatewayInstalled();
    } while (push.gatewayInstalled < installedCount_ && Clock::now() < collectDeadline &&
             !interrupted());
    push.peakTransfersRollout = peakRollout_;
    push.peakTransfersMetrics = sampler->peak();
    sampler.reset();
    auto after = fetchMetrics(metricsPort_);
    auto bytes = [](const std::map<std::string, double>& m) {
      auto it = m.find("impgate_code_bytes_total");
      return it == m.end() ? -1.0 : it->second;
    };
    if (bytes(before) >= 0 && bytes(after) >= 0) {
      push.bytesServed = static_cast<uint64_t>(bytes(after) - bytes(before));
    }
    progress(
        "deployment %u: %zu/%zu installed in %.2f s = %.0f devices/s; %.0f bytes served per "
        "device; peak transfers %ld (devices), %ld (rollout view), %ld (metrics)",
        deployment, installedCount_, count_, push.seconds, push.devicesPerSecond,
        static_cast<double>(push.bytesServed) / static_cast<double>(count_),
        push.peakTransfersDevices, push.peakTransfersRollout, push.peakTransfersMetrics);
    if (!ok || installedCount_ != count_) {
      push.error = "deployment " + std::to_string(deployment) + ": " +
                   std::to_string(installedCount_) + "/" + std::to_string(count_) + " installed, " +
                   std::to_string(failedCount_) + " failed; " + failureText();
    }
  }

  // Devices whose retained code state the node set to installed for the current target.
  std::size_t gatewayInstalled() {
    auto states = bus_->collectRetained(topics_.allDeviceCodeStates());
    if (!states) return 0;
    std::size_t installed = 0;
    for (const auto& [topic, payload] : *states) {
      auto state = bus::fleet::decodeDeviceCodeState(payload);
      if (state && state->state == bus::fleet::CodeState::kInstalled &&
          state->target == targetHex_) {
        ++installed;
      }
    }
    return installed;
  }

  void onCode(std::size_t i, const device::CodeEvent& event) {
    using Kind = device::CodeEvent::Kind;
    if (event.kind == Kind::kOffered) {
      if (!firstOfferSeen_ && event.offer.code == target_) {
        firstOfferSeen_ = true;
        firstOffer_ = Clock::now();
      }
      if (!active_[i]) {
        active_[i] = 1;
        ++activeCount_;
        peakActive_ = std::max(peakActive_, activeCount_);
      }
      return;
    }
    if (active_[i]) {
      active_[i] = 0;
      --activeCount_;
    }
    lastProgress_ = Clock::now();
    if (event.offer.code != target_) return;
    fetched_ += event.bytesFetched;
    copied_ += event.bytesCopied;
    if (event.kind == Kind::kInstalled) {
      if (installedEpoch_[i] != epoch_) {
        installedEpoch_[i] = epoch_;
        ++installedCount_;
        lastInstall_ = Clock::now();
      }
    } else if (event.kind == Kind::kFailed) {
      ++failedCount_;
      lastFailure_ = fleet_.id(i) + ": code " + event.reason;
    }
  }

  // -- the agent: code states, rollout views, the bystander's requests --

  void onAgentPublish(std::string_view topic, std::span<const uint8_t> payload) {
    std::string_view text(reinterpret_cast<const char*>(payload.data()), payload.size());
    if (topic.find("/rollout/") != std::string_view::npos) {
      auto view = bus::fleet::decodeNodeRolloutView(text);
      if (view && phase_ == Phase::kPush) {
        peakRollout_ = std::max(peakRollout_, static_cast<long>(view->transfers));
      }
    }
  }

  static void logRoundTrips(const char* when, const RoundTrips& figures) {
    progress("bystander %s: %zu round trips, p50 %.0f us, p99 %.0f us, max %.0f us, %zu lost", when,
             figures.samples, figures.p50Us, figures.p99Us, figures.maxUs, figures.lost);
  }

  std::optional<net::Endpoint> brokerEndpoint() const {
    auto endpoint = net::parseEndpoint("127.0.0.1:" + std::to_string(broker_.port()));
    if (!endpoint) return std::nullopt;
    return *endpoint;
  }

  std::string failureText() const {
    std::string text;
    if (interrupted()) text += "interrupted; ";
    if (!agentFailure_.empty()) text += "agent: " + agentFailure_ + "; ";
    if (deviceFailures_ > 0) text += std::to_string(deviceFailures_) + " device links dropped; ";
    if (!lastFailure_.empty()) text += "last failure: " + lastFailure_;
    if (text.empty()) text = "no progress for 30 s or out of time";
    return text;
  }

  enum class Phase { kNone, kProbe, kWire, kPush };

  const CodeBenchOptions& options_;
  const BenchFleet& fleet_;
  const net::TlsContext& tls_;
  testbed::MosquittoBroker& broker_;
  ImpgateServer& impgate_;
  uint16_t metricsPort_;
  EVP_PKEY* signingKey_;
  std::shared_ptr<EVP_PKEY> verifyKey_;
  CodeReport& report_;
  bus::TopicScheme topics_;
  std::size_t count_;
  std::string bystanderId_;

  net::EventLoop loop_;
  std::unique_ptr<impctl::FleetBus> bus_;
  std::unique_ptr<MqttAgent> agent_;
  bool agentSubscribed_ = false;
  std::string agentFailure_;
  CodeLibrary library_;
  std::vector<uint8_t> v1_, v2_, v2b_, v3_;
  std::vector<std::unique_ptr<device::DeviceClient>> clients_;
  std::unique_ptr<Bystander> bystander_;
  std::vector<std::string> inTopics_;
  std::vector<uint8_t> online_, active_, reached_;
  std::vector<uint32_t> installedEpoch_;
  std::size_t onlineCount_ = 0, reachedCount_ = 0, deviceFailures_ = 0;
  bool leaving_ = false;
  std::string lastFailure_;
  Phase phase_ = Phase::kNone;
  Clock::time_point lastProgress_, lastInstall_, firstOffer_;
  bool firstOfferSeen_ = false;

  std::vector<uint64_t> received_;
  std::vector<std::size_t> inFlight_, sentMessages_;
  std::function<void(std::size_t)> wireRefill_;
  std::size_t wireDone_ = 0, wireMessages_ = 0;
  uint64_t wireBytes_ = 0;

  code::Sha256 target_{};
  std::string targetHex_;
  uint32_t epoch_ = 0;
  std::size_t installedCount_ = 0, failedCount_ = 0;
  uint64_t fetched_ = 0, copied_ = 0;
  long activeCount_ = 0, peakActive_ = 0, peakRollout_ = -1;

 public:
  void markLeaving() { leaving_ = true; }
};

}  // namespace

double CodeReport::ratio() const {
  if (wire.devicesPerSecond <= 0 || push.devicesPerSecond <= 0) return 0;
  return push.devicesPerSecond / wire.devicesPerSecond;
}

bool CodeReport::complete() const {
  return error.empty() && wire.ran && wire.error.empty() && push.ran && push.error.empty() &&
         delta.ran && delta.error.empty();
}

void checkQuickThresholds(CodeReport& report) {
  char text[160];
  if (report.ratio() < kQuickMinRatio) {
    std::snprintf(text, sizeof text, "code push at %.2f x the wire rate (at least %.1f)",
                  report.ratio(), kQuickMinRatio);
    report.regressions.push_back(text);
  }
  uint32_t bound = report.options.maxConcurrent;
  if (bound > 0) {
    std::vector<const PushFigures*> pushes;
    for (const auto& run : report.pushRuns) pushes.push_back(&run);
    pushes.push_back(&report.delta);
    for (const PushFigures* push : pushes) {
      long peak = std::max(
          {push->peakTransfersDevices, push->peakTransfersRollout, push->peakTransfersMetrics});
      if (peak > static_cast<long>(bound)) {
        std::snprintf(text, sizeof text, "%ld concurrent transfers with --max-concurrent %u", peak,
                      bound);
        report.regressions.push_back(text);
      }
    }
  }
}

CodeReport runCodeBench(const CodeBenchOptions& options) {
  auto started = Clock::now();
  CodeReport report;
  report.options = options;
  report.date = utcNow();
  utsname uts{};
  if (::uname(&uts) == 0) report.kernel = uts.release;
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  report.cpus = cpus > 0 ? static_cast<unsigned>(cpus) : 0;
  report.impgateBinary = options.impgateBinary;
  auto finish = [&] {
    report.elapsedSeconds = seconds(Clock::now() - started);
    return report;
  };
  std::string mosquitto = testbed::findMosquitto(options.mosquittoBinary);
  if (mosquitto.empty()) {
    report.error = "mosquitto not found (PATH, /usr/sbin); use --mosquitto PATH";
    return finish();
  }
  std::string error;
  auto scratch = testbed::TempDir::create(options.tempParent, "impbench", error);
  if (!scratch) {
    report.error = error;
    return finish();
  }
  if (options.keepTemp) {
    scratch->keep();
    progress("keeping %s", scratch->path().c_str());
  }
  progress("creating a fleet CA, the code-signing key and %zu device credentials",
           options.devices + 1);
  auto fleet = BenchFleet::create(scratch->path() / "home", options.devices + 1, error);
  if (!fleet) {
    report.error = error;
    return finish();
  }
  // The fleet's CA set-up may have made the code-signing key pair already.
  if (!std::filesystem::exists(fleet->home().codeSigningKey())) {
    if (auto made = pki::createCodeSigningKey(fleet->home(), pki::Replace::kNo); !made) {
      report.error = "code-signing key: " + made.error().message;
      return finish();
    }
  } else if (auto made = pki::ensureCodeVerifyKey(fleet->home()); !made) {
    report.error = "code-signing key: " + made.error().message;
    return finish();
  }
  auto signingKey = pki::readSigningKey(fleet->home().codeSigningKey());
  auto verifyKey = pki::readVerifyKey(fleet->home().codeVerifyKey());
  if (!signingKey || !verifyKey) {
    report.error = "cannot read the code-signing key pair back";
    return finish();
  }
  std::shared_ptr<EVP_PKEY> sharedVerifyKey(verifyKey->release(), EVP_PKEY_free);
  net::TlsClientOptions tlsOptions;
  tlsOptions.caFile = fleet->home().caCert().string();
  auto tls = net::TlsContext::client(tlsOptions);
  if (!tls) {
    report.error = tls.error().message;
    return finish();
  }
  testbed::MosquittoOptions brokerOptions;
  brokerOptions.binary = mosquitto;
  brokerOptions.dir = scratch->path();
  brokerOptions.name = "bus";
  brokerOptions.logClients = false;
  brokerOptions.interrupted = [] { return interrupted(); };
  auto broker = testbed::MosquittoBroker::start(brokerOptions, error);
  if (!broker) {
    report.error = error;
    return finish();
  }
  report.mosquittoVersion = broker->version();
  uint16_t metricsPort = testbed::freeLoopbackPort();
  ImpgateConfig config{options.impgateBinary, fleet->home().root(), scratch->path(),
                       broker->port()};
  config.metrics = "127.0.0.1:" + std::to_string(metricsPort);
  auto impgate = ImpgateServer::start(config, error);
  if (!impgate) {
    report.error = error;
    return finish();
  }
  progress("mosquitto pid %d (port %u), impgate pid %d on port %u, metrics on %u", broker->pid(),
           broker->port(), impgate->pid(), impgate->port(), metricsPort);
  {
    Bench bench(options, *fleet, **tls, *broker, *impgate, metricsPort, signingKey->get(),
                sharedVerifyKey, report);
    bool ok = bench.run();
    if (!ok && report.error.empty() && report.wire.error.empty() && report.push.error.empty() &&
        report.delta.error.empty()) {
      report.error = "interrupted";
    }
    if (!report.complete())
      report.error +=
          (report.error.empty() ? "" : "\n") + std::string("impgate log:\n") + impgate->logTail();
    bench.markLeaving();
    bench.leave();
  }
  progress("stopping impgate and mosquitto");
  impgate->stop();
  broker->stop();
  if (interrupted() && report.error.empty()) report.error = "interrupted";
  progress("done; removing the temp dir");
  return finish();
}

namespace {

nlohmann::json pushJson(const PushFigures& p) {
  if (!p.ran) return nullptr;
  return {{"devices", p.devices},
          {"codeSize", p.codeSize},
          {"installed", p.installed},
          {"failed", p.failed},
          {"gatewayInstalledStates", p.gatewayInstalled},
          {"seconds", p.seconds},
          {"secondsToFirstOffer", p.secondsToFirstOffer},
          {"devicesPerSecond", p.devicesPerSecond},
          {"bytesServed", p.bytesServed},
          {"bytesServedPerDevice", p.devices ? double(p.bytesServed) / double(p.devices) : 0.0},
          {"bytesServedPerDeviceOfCode",
           p.devices && p.codeSize ? double(p.bytesServed) / double(p.devices) / p.codeSize : 0.0},
          {"bytesFetched", p.bytesFetched},
          {"bytesCopied", p.bytesCopied},
          {"gatewayCpuSeconds", p.gatewayCpuSeconds},
          {"brokerCpuSeconds", p.brokerCpuSeconds},
          {"benchCpuSeconds", p.benchCpuSeconds},
          {"gatewayCpuUsPerDevice",
           p.installed ? p.gatewayCpuSeconds * 1e6 / double(p.installed) : 0.0},
          {"peakTransfersDevices", p.peakTransfersDevices},
          {"peakTransfersRolloutView",
           p.peakTransfersRollout < 0 ? nlohmann::json() : nlohmann::json(p.peakTransfersRollout)},
          {"peakTransfersMetrics",
           p.peakTransfersMetrics < 0 ? nlohmann::json() : nlohmann::json(p.peakTransfersMetrics)},
          {"error", p.error.empty() ? nlohmann::json() : nlohmann::json(p.error)}};
}

nlohmann::json roundTripJson(const RoundTrips& r) {
  return {{"samples", r.samples},
          {"lost", r.lost},
          {"p50Us", r.p50Us},
          {"p99Us", r.p99Us},
          {"maxUs", r.maxUs}};
}

}  // namespace

nlohmann::json toJson(const CodeReport& r) {
  const auto& o = r.options;
  nlohmann::json wire = nullptr;
  if (r.wire.ran) {
    wire = {{"devices", r.wire.devices},
            {"messages", r.wire.messages},
            {"received", r.wire.received},
            {"bytesPerDevice", r.wire.bytesPerDevice},
            {"bytesReceived", r.wire.bytesReceived},
            {"seconds", r.wire.seconds},
            {"devicesPerSecond", r.wire.devicesPerSecond},
            {"gatewayCpuSeconds", r.wire.gatewayCpuSeconds},
            {"brokerCpuSeconds", r.wire.brokerCpuSeconds},
            {"benchCpuSeconds", r.wire.benchCpuSeconds},
            {"error", r.wire.error.empty() ? nlohmann::json() : nlohmann::json(r.wire.error)}};
  }
  return {{"benchmark", "code"},
          {"date", r.date},
          {"machine", {{"kernel", r.kernel}, {"cpus", r.cpus}, {"mosquitto", r.mosquittoVersion}}},
          {"options",
           {{"devices", o.devices},
            {"codeBytes", o.codeBytes},
            {"maxConcurrent", o.maxConcurrent},
            {"wireMessageBytes", o.wireMessageBytes},
            {"wireWindow", o.wireWindow},
            {"repeat", o.repeat},
            {"connectRate", o.connectRate},
            {"sources", o.sources},
            {"quick", o.quick},
            {"impgate", r.impgateBinary}}},
          {"secondsToAllOnline", r.secondsToAllOnline},
          {"wire", wire},
          {"push", pushJson(r.push)},
          {"pushRuns",
           [&] {
             auto runs = nlohmann::json::array();
             for (const auto& run : r.pushRuns) runs.push_back(pushJson(run));
             return runs;
           }()},
          {"wireRunsDevicesPerSecond",
           [&] {
             auto runs = nlohmann::json::array();
             for (const auto& run : r.wireRuns) runs.push_back(run.devicesPerSecond);
             return runs;
           }()},
          {"delta", pushJson(r.delta)},
          {"ratio", r.ratio()},
          {"bystander",
           {{"idle", roundTripJson(r.bystanderIdle)}, {"push", roundTripJson(r.bystanderPush)}}},
          {"regressions", r.regressions},
          {"complete", r.complete()},
          {"error", r.error.empty() ? nlohmann::json() : nlohmann::json(r.error)},
          {"elapsedSeconds", r.elapsedSeconds}};
}

std::string formatReport(const CodeReport& r) {
  std::string out;
  char line[320];
  auto add = [&](const char* format, auto... args) {
    std::snprintf(line, sizeof line, format, args...);
    out += line;
  };
  const auto& o = r.options;
  add("impbench code, %s, kernel %s, %u CPUs, mosquitto %s\n", r.date.c_str(), r.kernel.c_str(),
      r.cpus, r.mosquittoVersion.c_str());
  add("%zu devices on one impgate node, code of %zu bytes, max_concurrent %u%s; wire and push "
      "phases: median of %u runs\n\n",
      o.devices, o.codeBytes, o.maxConcurrent, o.maxConcurrent == 0 ? " (unbounded)" : "",
      o.repeat);
  add("| %-44s | %10s | %10s | %12s | %12s | %12s |\n", "phase", "seconds", "devices/s",
      "bytes/device", "gw CPU s", "broker CPU s");
  add("|%s|%s|%s|%s|%s|%s|\n", std::string(46, '-').c_str(), std::string(12, '-').c_str(),
      std::string(12, '-').c_str(), std::string(14, '-').c_str(), std::string(14, '-').c_str(),
      std::string(14, '-').c_str());
  if (r.wire.ran) {
    char name[64];
    std::snprintf(name, sizeof name, "wire: MSG frames of %zu B, QoS 1", o.wireMessageBytes);
    add("| %-44s | %10.2f | %10.0f | %12llu | %12.2f | %12.2f |\n", name, r.wire.seconds,
        r.wire.devicesPerSecond, static_cast<unsigned long long>(r.wire.bytesPerDevice),
        r.wire.gatewayCpuSeconds, r.wire.brokerCpuSeconds);
  }
  for (const auto* p : {&r.push, &r.delta}) {
    if (!p->ran) continue;
    add("| %-44s | %10.2f | %10.0f | %12.0f | %12.2f | %12.2f |\n",
        p == &r.push ? "code push v2 (v1 -> v2, all new)" : "code push v3 (v2 + one line, delta)",
        p->seconds, p->devicesPerSecond,
        p->devices ? double(p->bytesServed) / double(p->devices) : 0.0, p->gatewayCpuSeconds,
        p->brokerCpuSeconds);
  }
  out += "\n";
  if (r.ratio() > 0) {
    add("code push / wire limit: %.2f (goal >= 0.70 with max_concurrent unbounded)\n", r.ratio());
  }
  if (r.delta.ran && r.delta.devices > 0) {
    double perDevice = double(r.delta.bytesServed) / double(r.delta.devices);
    add("delta: %.0f of %u bytes served per device (%.1f %%; goal < 10 %%); devices fetched %llu "
        "and copied %llu bytes in all\n",
        perDevice, r.delta.codeSize, 100.0 * perDevice / r.delta.codeSize,
        static_cast<unsigned long long>(r.delta.bytesFetched),
        static_cast<unsigned long long>(r.delta.bytesCopied));
  }
  if (r.pushRuns.size() > 1 || r.wireRuns.size() > 1) {
    out += "runs, devices/s: wire";
    for (const auto& run : r.wireRuns) add(" %.0f", run.devicesPerSecond);
    out += "; push";
    for (const auto& run : r.pushRuns) add(" %.0f", run.devicesPerSecond);
    out += "\n";
  }
  for (const auto* p : {&r.push, &r.delta}) {
    if (!p->ran) continue;
    add("%s: %zu/%zu installed (node's states: %zu), %zu failed; first offer %.3f s after the "
        "deployment; peak concurrent transfers: %ld seen by the devices, %ld in the node's "
        "rollout view, %ld in /metrics\n",
        p == &r.push ? "push" : "delta", p->installed, p->devices, p->gatewayInstalled, p->failed,
        p->secondsToFirstOffer, p->peakTransfersDevices, p->peakTransfersRollout,
        p->peakTransfersMetrics);
  }
  add("bystander round trip: idle p50 %.0f us, p99 %.0f us (%zu samples); during the push p50 "
      "%.0f us, p99 %.0f us, max %.0f us (%zu samples, %zu lost)\n",
      r.bystanderIdle.p50Us, r.bystanderIdle.p99Us, r.bystanderIdle.samples, r.bystanderPush.p50Us,
      r.bystanderPush.p99Us, r.bystanderPush.maxUs, r.bystanderPush.samples, r.bystanderPush.lost);
  add("devices online in %.1f s; run took %.1f s\n", r.secondsToAllOnline, r.elapsedSeconds);
  if (o.quick) {
    out += r.regressions.empty() ? "quick thresholds: passed\n" : "quick thresholds: FAILED\n";
    for (const auto& text : r.regressions) out += "  " + text + "\n";
  }
  for (const auto* e : {&r.wire.error, &r.push.error, &r.delta.error, &r.error}) {
    if (!e->empty()) out += "error: " + *e + "\n";
  }
  return out;
}

}  // namespace impgate::bench
