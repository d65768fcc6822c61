#include "tools/impbench/message_bench.h"

#include <openssl/evp.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <thread>

#include "gateway/base/net/event_loop.h"
#include "gateway/base/net/socket.h"
#include "gateway/base/net/tls_context.h"
#include "tools/impbench/bench_fleet.h"
#include "tools/impbench/impgate_server.h"
#include "tools/impbench/interrupt.h"
#include "tools/impbench/message_devices.h"
#include "tools/impbench/mqtt_agent.h"
#include "tools/impbench/process_stats.h"
#include "tools/impbench/progress.h"
#include "tools/testbed/free_port.h"
#include "tools/testbed/mosquitto_broker.h"
#include "tools/testbed/tcp_table.h"
#include "tools/testbed/temp_dir.h"

namespace impgate::bench {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
namespace mqtt = bus::mqtt;

// impgate's topic prefix, and the one the MQTT-direct devices use instead: the same length, so
// both paths carry the same bytes, but apart, so an agent message reaches one path only.
const std::string kImpPrefix = "imp";
const std::string kDirectPrefix = "dir";
// A run whose receivers made no progress for this long after the senders stopped is over: what
// has not arrived by then is lost.
constexpr milliseconds kStallDeadline{2000};
// Past its send limit a run gets this long to drain before it is cut off.
constexpr milliseconds kDrainLimit{10000};
constexpr milliseconds kConnectDeadline{30000};
constexpr milliseconds kReachDeadline{15000};
// Between runs the agent and the devices must have seen nothing for kQuiet (at most kQuietLimit),
// so that one run's tail (messages a broker still queued, late receipts) is not the next one's.
constexpr milliseconds kQuiet{300};
constexpr milliseconds kQuietLimit{10000};
constexpr std::size_t kWarmupMessages = 2000;
// Samples of the latency run's first half second are a warm-up and not counted.
constexpr milliseconds kLatencyWarmup{500};

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

// SHA-256 of a file in hex, so that a report names the exact impgate binary it measured (the
// lead compares binaries before and after a change); empty when it cannot be read.
std::string fileSha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx);
    return {};
  }
  std::vector<char> buffer(1 << 16);
  while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0) {
    EVP_DigestUpdate(ctx, buffer.data(), static_cast<std::size_t>(in.gcount()));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx, digest, &length);
  EVP_MD_CTX_free(ctx);
  std::string hex;
  char two[3];
  for (unsigned int i = 0; i < length; ++i) {
    std::snprintf(two, sizeof two, "%02x", digest[i]);
    hex += two;
  }
  return hex;
}

// Device index from <prefix>/dev/bench-NNNNN/...: the fleet numbers its ids from 1.
std::optional<std::size_t> deviceIndex(std::string_view topic, std::string_view prefix) {
  constexpr std::string_view head = "/dev/bench-";
  if (topic.substr(0, prefix.size()) != prefix) return std::nullopt;
  topic.remove_prefix(prefix.size());
  if (topic.substr(0, head.size()) != head) return std::nullopt;
  topic.remove_prefix(head.size());
  std::size_t number = 0;
  auto [end, ec] = std::from_chars(topic.data(), topic.data() + topic.size(), number);
  if (ec != std::errc() || number == 0) return std::nullopt;
  return number - 1;
}

bool endsWith(std::string_view text, std::string_view tail) {
  return text.size() >= tail.size() && text.substr(text.size() - tail.size()) == tail;
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  std::size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// The processes of one broker configuration: mosquitto with both listeners, impgate on it.
struct Servers {
  std::unique_ptr<testbed::MosquittoBroker> broker;
  uint16_t tlsPort = 0;
  std::unique_ptr<ImpgateServer> impgate;
};

std::unique_ptr<Servers> startServers(const MessageBenchOptions& options, const BenchFleet& fleet,
                                      const std::filesystem::path& dir, bool brokerDefault,
                                      std::string& error) {
  auto servers = std::make_unique<Servers>();
  servers->tlsPort = testbed::freeLoopbackPort();
  testbed::MosquittoOptions broker;
  broker.binary = options.mosquittoBinary;
  broker.dir = dir;
  broker.name = brokerDefault ? "broker-default" : "unlimited";
  broker.logClients = false;
  broker.interrupted = [] { return interrupted(); };
  // The testbed's broker sets max_queued_messages 0 and max_inflight_messages 0 (no limit,
  // mosquitto.conf(5)) and set_tcp_nodelay true. The broker-default case puts mosquitto's own
  // defaults back: 20 in flight per client (also the receive maximum it announces to MQTT 5
  // clients such as impgate) and 1000 queued.
  if (brokerDefault) {
    broker.extraConfig = {"max_inflight_messages 20", "max_queued_messages 1000"};
  }
  // The MQTT-direct devices' listener: what `impbench connections` measures mosquitto with.
  for (const std::string& line :
       {"listener " + std::to_string(servers->tlsPort) + " 127.0.0.1",
        "cafile " + fleet.home().caCert().string(),
        "certfile " + fleet.home().gatewayCert().string(),
        "keyfile " + fleet.home().gatewayKey().string(), std::string("require_certificate true"),
        std::string("use_identity_as_username true"), std::string("tls_version tlsv1.3")}) {
    broker.extraConfig.push_back(line);
  }
  servers->broker = testbed::MosquittoBroker::start(broker, error);
  if (!servers->broker) return nullptr;
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (!testbed::isListening(servers->tlsPort)) {
    if (Clock::now() > deadline) {
      error = "mosquitto's TLS listener on port " + std::to_string(servers->tlsPort) +
              " did not come up:\n" + servers->broker->logTail();
      return nullptr;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  servers->impgate = ImpgateServer::start(
      {options.impgateBinary, fleet.home().root(), dir, servers->broker->port()}, error);
  if (!servers->impgate) return nullptr;
  progress("%s: mosquitto pid %d (plain %u, TLS %u), impgate pid %d on port %u",
           broker.name.c_str(), servers->broker->pid(), servers->broker->port(), servers->tlsPort,
           servers->impgate->pid(), servers->impgate->port());
  return servers;
}

// One measured (or warm-up) run of one case over one path. Counts per device, paces the
// senders with a window, and decides when the run is over.
class Run {
 public:
  struct Spec {
    MessageCase cas;
    bool impgatePath = true;
    std::size_t messages = 0;
    milliseconds limit{5000};
    std::size_t window = 32;
    bool latency = false;  // paced at `rate`, timestamps in the payload
    double rate = 0;
  };

  Run(net::EventLoop& loop, MqttAgent& agent, MessageDevices& devices,
      const std::vector<std::string>& inTopics, Spec spec)
      : loop_(loop), agent_(agent), devices_(devices), inTopics_(inTopics), spec_(std::move(spec)) {
    std::size_t n = spec_.cas.devices;
    sent_.assign(n, 0);
    acked_.assign(n, 0);
    received_.assign(n, 0);
    refused_.assign(n, 0);
    quota_.assign(n, spec_.latency ? 0 : spec_.messages / n);
    if (!spec_.latency) {
      for (std::size_t i = 0; i < spec_.messages % n; ++i) ++quota_[i];
    }
    payload_.assign(std::max<std::size_t>(spec_.cas.payload, 8), 0);
  }

  bool deviceToAgent() const { return spec_.cas.direction == Direction::kDeviceToAgent; }

  // What the agent received (device→agent messages, or impgate's receipts).
  void onAgentPublish(std::string_view topic, std::span<const uint8_t> payload) {
    if (endsWith(topic, "/ack")) {
      ++result_.receipts;
      std::string_view text(reinterpret_cast<const char*>(payload.data()), payload.size());
      if (text.find("\"status\":\"delivered\"") == std::string_view::npos) {
        // impgate refused the message (or gave up on it) and said so: it will not arrive, so
        // its window slot is free again.
        ++result_.receiptsNotDelivered;
        if (result_.firstBadReceipt.empty()) result_.firstBadReceipt = text;
        auto index = deviceIndex(topic, kImpPrefix);
        if (index && *index < refused_.size()) {
          ++refused_[*index];
          pump(*index);
        }
      }
      progressed();
      return;
    }
    if (!deviceToAgent()) return;
    auto index = deviceIndex(topic, spec_.impgatePath ? kImpPrefix : kDirectPrefix);
    if (!index || *index >= received_.size()) return;
    arrived(*index, payload);
    if (!spec_.cas.acknowledged) pump(*index);  // the window is counted at the receiver
  }
  void onDeviceReceived(std::size_t index, std::span<const uint8_t> payload) {
    if (deviceToAgent() || index >= received_.size()) return;
    arrived(index, payload);
    pump(index);
  }
  void onDeviceAcknowledged(std::size_t index) {
    if (index >= acked_.size()) return;
    ++acked_[index];
    ++result_.acknowledged;
    progressed();
    if (deviceToAgent() && spec_.cas.acknowledged) pump(index);
  }
  void onDeviceRefused(std::size_t index) {
    ++result_.refused;
    onDeviceAcknowledged(index);
  }
  void onAgentPuback() { progressed(); }

  PathRun execute(pid_t gateway, pid_t broker) {
    auto gatewayBefore = sampleProcess(gateway);
    auto brokerBefore = sampleProcess(broker);
    auto benchBefore = threadCpuTime();
    start_ = Clock::now();
    lastProgress_ = start_;
    lastArrival_ = start_;
    net::EventLoop::TimerId pacer = 0;
    if (spec_.latency) {
      owed_.assign(spec_.cas.devices, 0);
      pacer = loop_.runEvery(milliseconds(1), [this] { pace(); });
    } else {
      for (std::size_t i = 0; i < spec_.cas.devices; ++i) pump(i);
    }
    // A tick keeps the loop checking the deadlines when nothing arrives.
    auto tick = loop_.runEvery(milliseconds(20), [] {});
    bool done = loop_.runUntil([this] { return finished(); },
                               spec_.limit + kDrainLimit + milliseconds(1000));
    loop_.cancel(tick);
    if (pacer) loop_.cancel(pacer);
    auto gatewayAfter = sampleProcess(gateway);
    auto brokerAfter = sampleProcess(broker);
    result_.benchCpuSeconds = seconds(threadCpuTime() - benchBefore);
    if (gatewayBefore && gatewayAfter) {
      result_.gatewayCpuSeconds = seconds(gatewayAfter->cpu - gatewayBefore->cpu);
      result_.gatewayCpuTickSeconds =
          ticksToSeconds(gatewayAfter->cpuTicks - gatewayBefore->cpuTicks);
    } else {
      result_.error = "impgate is gone";
    }
    if (brokerBefore && brokerAfter) {
      result_.brokerCpuSeconds = seconds(brokerAfter->cpu - brokerBefore->cpu);
      result_.brokerCpuTickSeconds = ticksToSeconds(brokerAfter->cpuTicks - brokerBefore->cpuTicks);
    } else {
      result_.error = "mosquitto is gone";
    }
    // Still arriving at the run's hard limit (--seconds + 11 s): what is missing then counts as
    // lost, and the run says it was cut off (a measured outcome, not a failure of the run).
    result_.cutOff = !done;
    if (interrupted()) result_.error = "interrupted";
    result_.seconds = seconds(lastArrival_ - start_);
    return result_;
  }

  std::vector<int64_t>& latencies() { return latencies_; }

 private:
  void progressed() { lastProgress_ = Clock::now(); }

  void arrived(std::size_t index, std::span<const uint8_t> payload) {
    ++received_[index];
    ++result_.received;
    auto now = Clock::now();
    lastArrival_ = now;
    lastProgress_ = now;
    if (spec_.latency && payload.size() >= 8) {
      int64_t sentAt = 0;
      std::memcpy(&sentAt, payload.data(), sizeof sentAt);
      int64_t nowNs = now.time_since_epoch().count();
      if (Clock::time_point(Clock::duration(sentAt)) >= start_ + kLatencyWarmup) {
        latencies_.push_back(nowNs - sentAt);
      }
    }
  }

  bool sendingOpen() const {
    return !interrupted() && Clock::now() - start_ < spec_.limit && !stopSending_;
  }

  std::size_t inFlight(std::size_t i) const {
    // Acknowledged device messages free their slot at the ACK/PUBACK; everything else when
    // it reached the receiver.
    if (deviceToAgent() && spec_.cas.acknowledged) return sent_[i] - acked_[i];
    return sent_[i] - received_[i] - refused_[i];
  }

  bool sendOne(std::size_t i) {
    if (spec_.latency) {
      int64_t now = Clock::now().time_since_epoch().count();
      std::memcpy(payload_.data(), &now, sizeof now);
    }
    std::span<const uint8_t> payload(payload_.data(), spec_.cas.payload);
    if (deviceToAgent()) {
      if (!devices_.send(i, payload, spec_.cas.acknowledged)) return false;
    } else {
      agent_.publish(inTopics_[i], payload, spec_.cas.acknowledged ? 1 : 0);
    }
    ++sent_[i];
    ++result_.sent;
    return true;
  }

  void pump(std::size_t i) {
    if (!sendingOpen()) return;
    if (spec_.latency) {
      while (owed_[i] > 0 && inFlight(i) < spec_.window) {
        if (!sendOne(i)) return;
        --owed_[i];
      }
      return;
    }
    while (sent_[i] < quota_[i] && inFlight(i) < spec_.window) {
      if (!sendOne(i)) {
        stopSending_ = true;  // the device is gone: the run reports it
        return;
      }
    }
  }

  void pace() {
    if (!sendingOpen()) return;
    auto due = static_cast<std::size_t>(seconds(Clock::now() - start_) * spec_.rate);
    std::size_t n = spec_.cas.devices;
    while (scheduled_ < due) {
      std::size_t i = scheduled_++ % n;
      ++owed_[i];
      pump(i);
    }
  }

  bool allSent() const {
    if (spec_.latency || !sendingOpen()) return !sendingOpen();
    return result_.sent >= spec_.messages;
  }

  bool finished() {
    if (interrupted()) return true;
    bool complete = result_.received + result_.receiptsNotDelivered >= result_.sent;
    if (deviceToAgent() && spec_.cas.acknowledged) complete &= result_.acknowledged >= result_.sent;
    // The agent asks for no receipts (there are none on the direct path either), so impgate
    // publishes none: nothing to wait for, and a message it refused counts as lost.
    if (!deviceToAgent() && spec_.cas.acknowledged) complete &= agent_.unacknowledged() == 0;
    if (complete && allSent()) return true;
    // Lost messages never free their window slots: with no progress for a while the run is over.
    if (Clock::now() - lastProgress_ > kStallDeadline) {
      result_.stalled = true;
      return true;
    }
    return false;
  }

  net::EventLoop& loop_;
  MqttAgent& agent_;
  MessageDevices& devices_;
  const std::vector<std::string>& inTopics_;
  Spec spec_;
  std::vector<std::size_t> sent_, acked_, received_, refused_, quota_, owed_;
  std::size_t scheduled_ = 0;
  std::vector<uint8_t> payload_;
  std::vector<int64_t> latencies_;
  Clock::time_point start_, lastProgress_, lastArrival_;
  bool stopSending_ = false;
  PathRun result_;
};

// Everything one broker configuration needs: the servers, the agent, the device sets of the
// current device count; the cases run through it.
class Bench {
 public:
  Bench(const MessageBenchOptions& options, const BenchFleet& fleet, const net::TlsContext& tls,
        Servers& servers)
      : options_(options), fleet_(fleet), tls_(tls), servers_(servers) {}

  bool connectAgent(std::string& error) {
    auto endpoint = net::parseEndpoint("127.0.0.1:" + std::to_string(servers_.broker->port()));
    if (!endpoint) {
      error = endpoint.error().message;
      return false;
    }
    MqttAgent::Events events;
    events.onConnected = [this] {
      mqtt::SubscribeFilter filters[] = {
          {"imp/dev/+/out/#", 1}, {"imp/dev/+/ack", 1}, {"dir/dev/+/out/#", 1}};
      agent_->subscribe(filters);
    };
    events.onSubscribed = [this] { agentSubscribed_ = true; };
    events.onPublish = [this](std::string_view topic, std::span<const uint8_t> payload, uint8_t) {
      lastEvent_ = Clock::now();
      if (run_) run_->onAgentPublish(topic, payload);
    };
    events.onPuback = [this] {
      lastEvent_ = Clock::now();
      if (run_) run_->onAgentPuback();
    };
    events.onFailed = [this](const std::string& reason) { agentFailure_ = reason; };
    agent_ = std::make_unique<MqttAgent>(loop_, *endpoint, "impbench-agent", std::move(events));
    agent_->connect();
    bool ok =
        loop_.runUntil([&] { return agentSubscribed_ || !agentFailure_.empty() || interrupted(); },
                       kConnectDeadline);
    if (!ok || !agentSubscribed_) {
      error = "agent: " +
              (agentFailure_.empty() ? std::string("no SUBACK within 30 s") : agentFailure_);
      return false;
    }
    return true;
  }

  // Connects `count` devices on each path and waits until an agent message reaches each of
  // them (impgate subscribes a device's inbound topic after WELCOME, on its own time).
  bool connectDevices(std::size_t count, std::string& error) {
    imp_.reset();
    direct_.reset();
    impInTopics_.clear();
    directInTopics_.clear();
    for (std::size_t i = 0; i < count; ++i) {
      std::string tail = "/dev/" + fleet_.id(i) + "/in/" + std::string(kBenchEvent);
      impInTopics_.push_back(kImpPrefix + tail);
      directInTopics_.push_back(kDirectPrefix + tail);
    }
    auto tlsEndpoint = net::parseEndpoint("127.0.0.1:" + std::to_string(servers_.tlsPort));
    imp_ = std::make_unique<ImpDevices>(loop_, tls_, fleet_, count,
                                        "127.0.0.1:" + std::to_string(servers_.impgate->port()));
    direct_ =
        std::make_unique<MqttDevices>(loop_, tls_, fleet_, count, *tlsEndpoint, kDirectPrefix);
    for (MessageDevices* set :
         {static_cast<MessageDevices*>(imp_.get()), static_cast<MessageDevices*>(direct_.get())}) {
      set->onAcknowledged = [this](std::size_t i) {
        lastEvent_ = Clock::now();
        if (run_) run_->onDeviceAcknowledged(i);
      };
      set->onRefused = [this](std::size_t i) {
        lastEvent_ = Clock::now();
        if (run_) run_->onDeviceRefused(i);
      };
      set->onReceived = [this](std::size_t i, std::span<const uint8_t> payload) {
        lastEvent_ = Clock::now();
        if (run_) run_->onDeviceReceived(i, payload);
      };
      set->connectAll();
    }
    imp_->onReceived = [this](std::size_t i, std::span<const uint8_t> payload) {
      lastEvent_ = Clock::now();
      if (run_) {
        run_->onDeviceReceived(i, payload);
      } else if (i < reached_.size()) {
        reached_[i] = 1;
      }
    };
    bool ok = loop_.runUntil(
        [&] {
          return interrupted() || imp_->failures() > 0 || direct_->failures() > 0 ||
                 (imp_->ready() == count && direct_->ready() == count);
        },
        kConnectDeadline);
    if (!ok || imp_->ready() != count || direct_->ready() != count) {
      error = "devices: " + std::to_string(imp_->ready()) + "/" + std::to_string(count) +
              " on impgate, " + std::to_string(direct_->ready()) + "/" + std::to_string(count) +
              " on mosquitto; last failure: " + imp_->lastFailure() + direct_->lastFailure();
      return false;
    }
    return waitReachable(error);
  }

  PathRun run(const MessageCase& cas, bool impgatePath, std::size_t messages, milliseconds limit,
              std::vector<int64_t>* latencies = nullptr, double rate = 0) {
    MessageDevices& devices = impgatePath ? static_cast<MessageDevices&>(*imp_) : *direct_;
    Run::Spec spec{cas, impgatePath, messages, limit, options_.window, latencies != nullptr, rate};
    Run run(loop_, *agent_, devices, impgatePath ? impInTopics_ : directInTopics_, spec);
    run_ = &run;
    PathRun result = run.execute(servers_.impgate->pid(), servers_.broker->pid());
    if (latencies) *latencies = std::move(run.latencies());
    // The tail (late receipts, PUBACKs) belongs to no run.
    run_ = nullptr;
    waitQuiet();
    if (!agentFailure_.empty()) result.error = "agent: " + agentFailure_;
    if (devices.failures() > 0) result.error = "device: " + devices.lastFailure();
    return result;
  }

  bool healthy() const {
    return agentFailure_.empty() && imp_ && imp_->failures() == 0 && direct_->failures() == 0;
  }

  void disconnectDevices() {
    if (imp_) imp_->disconnectAll();
    if (direct_) direct_->disconnectAll();
    (void)loop_.runUntil([] { return false; }, milliseconds(100));
    imp_.reset();
    direct_.reset();
  }

  void disconnectAgent() {
    if (agent_) agent_->disconnect();
    agent_.reset();
  }

 private:
  void waitQuiet() {
    auto tick = loop_.runEvery(milliseconds(20), [] {});
    (void)loop_.runUntil([this] { return Clock::now() - lastEvent_ > kQuiet || interrupted(); },
                         kQuietLimit);
    loop_.cancel(tick);
  }

  bool waitReachable(std::string& error) {
    std::size_t count = impInTopics_.size();
    reached_.assign(count, 0);
    const uint8_t probe[1] = {0};
    auto all = [&] { return std::count(reached_.begin(), reached_.end(), 1) == long(count); };
    auto deadline = Clock::now() + kReachDeadline;
    while (!all() && Clock::now() < deadline && !interrupted()) {
      for (std::size_t i = 0; i < count; ++i) {
        if (!reached_[i]) agent_->publish(impInTopics_[i], probe, 0);
      }
      (void)loop_.runUntil(all, milliseconds(100));
    }
    waitQuiet();  // late duplicates of the probes
    if (!all()) {
      error = "agent messages did not reach every device within 15 s";
      return false;
    }
    return true;
  }

  const MessageBenchOptions& options_;
  const BenchFleet& fleet_;
  const net::TlsContext& tls_;
  Servers& servers_;
  net::EventLoop loop_;
  std::unique_ptr<MqttAgent> agent_;
  std::string agentFailure_;
  std::unique_ptr<ImpDevices> imp_;
  std::unique_ptr<MqttDevices> direct_;
  bool agentSubscribed_ = false;
  Clock::time_point lastEvent_;
  std::vector<std::string> impInTopics_, directInTopics_;
  std::vector<uint8_t> reached_;
  Run* run_ = nullptr;
};

LatencyFigures latencyFigures(std::vector<int64_t> samples, const PathRun& run) {
  LatencyFigures figures;
  figures.sent = run.sent;
  figures.received = run.received;
  figures.error = run.error;
  figures.samples = samples.size();
  if (samples.empty()) return figures;
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) {
    std::size_t index = static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1));
    return static_cast<double>(samples[index]) / 1000.0;
  };
  figures.p50Us = at(0.5);
  figures.p99Us = at(0.99);
  figures.p999Us = at(0.999);
  figures.maxUs = static_cast<double>(samples.back()) / 1000.0;
  return figures;
}

std::vector<MessageCase> casesFor(const MessageBenchOptions& options, std::size_t devices) {
  std::vector<MessageCase> cases;
  if (options.quick) {
    cases.push_back({Direction::kDeviceToAgent, true, 64, devices, false});
    cases.push_back({Direction::kAgentToDevice, true, 64, devices, false});
    return cases;
  }
  for (Direction direction : {Direction::kDeviceToAgent, Direction::kAgentToDevice}) {
    for (bool acknowledged : {true, false}) {
      for (std::size_t payload : options.payloads) {
        cases.push_back({direction, acknowledged, payload, devices, false});
      }
    }
  }
  return cases;
}

void describeMachine(MessageReport& report) {
  report.date = utcNow();
  utsname uts{};
  if (::uname(&uts) == 0) report.kernel = uts.release;
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) report.cpuModel = line.substr(colon + 2);
      break;
    }
  }
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  report.cpus = cpus > 0 ? static_cast<unsigned>(cpus) : 0;
}

// One broker configuration: its servers, then per device count its cases, each path in turn.
void runConfiguration(const MessageBenchOptions& options, const BenchFleet& fleet,
                      const net::TlsContext& tls, const std::filesystem::path& dir,
                      bool brokerDefault, MessageReport& report) {
  std::string error;
  auto servers = startServers(options, fleet, dir, brokerDefault, error);
  if (!servers) {
    report.error = error;
    return;
  }
  if (report.mosquittoVersion.empty()) report.mosquittoVersion = servers->broker->version();
  Bench bench(options, fleet, tls, *servers);
  if (!bench.connectAgent(error)) {
    report.error = error;
    return;
  }
  std::vector<std::size_t> deviceCounts = options.devices;
  if (brokerDefault) deviceCounts = {options.brokerDefaultDevices};
  for (std::size_t devices : deviceCounts) {
    if (interrupted()) break;
    progress("%zu devices on each path: connecting", devices);
    if (!bench.connectDevices(devices, error)) {
      report.error = error + "\nimpgate log:\n" + servers->impgate->logTail();
      return;
    }
    std::vector<MessageCase> cases;
    if (brokerDefault) {
      cases = {{Direction::kDeviceToAgent, true, 64, devices, true},
               {Direction::kAgentToDevice, true, 64, devices, true}};
    } else {
      cases = casesFor(options, devices);
    }
    // A short warm-up per path: connections, caches and allocators past their first use.
    for (bool path : {true, false}) {
      bench.run(cases.front(), path, std::min(options.messages, kWarmupMessages), options.runLimit);
    }
    std::size_t first = report.cases.size();
    for (const auto& cas : cases) report.cases.push_back({cas, {}, {}});
    for (unsigned r = 0; r < options.repeat && !interrupted(); ++r) {
      for (std::size_t c = 0; c < cases.size() && !interrupted(); ++c) {
        CaseResult& result = report.cases[first + c];
        // Alternate which path goes first, so neither always runs on a warmer machine.
        bool impgateFirst = (c + r) % 2 == 0;
        for (bool impgatePath : {impgateFirst, !impgateFirst}) {
          PathRun run = bench.run(cases[c], impgatePath, options.messages, options.runLimit);
          progress("%-34s %-7s %8.0f msg/s, %zu/%zu arrived%s%s%s", cases[c].name().c_str(),
                   impgatePath ? "impgate" : "direct", run.messagesPerSecond(), run.received,
                   run.sent, run.stalled ? " (stalled)" : "", run.cutOff ? " (cut off)" : "",
                   run.error.empty() ? "" : (" error: " + run.error).c_str());
          (impgatePath ? result.impgate : result.direct).runs.push_back(run);
        }
        if (!bench.healthy()) break;
      }
      if (!bench.healthy()) break;
    }
    if (!bench.healthy()) {
      report.error = "a client lost its connection; see the runs' errors\nimpgate log:\n" +
                     servers->impgate->logTail();
      return;
    }
    if (!brokerDefault && options.latency && devices == options.latencyDevices) {
      report.latencyRan = true;
      MessageCase cas{Direction::kDeviceToAgent, true, 64, devices, false};
      auto total = static_cast<std::size_t>(options.latencyRate * seconds(options.latencyDuration));
      for (bool impgatePath : {true, false}) {
        std::vector<int64_t> samples;
        PathRun run = bench.run(cas, impgatePath, total, options.latencyDuration, &samples,
                                options.latencyRate);
        auto figures = latencyFigures(std::move(samples), run);
        progress("latency %-7s at %.0f msg/s: p50 %.0f us, p99 %.0f us, p99.9 %.0f us",
                 impgatePath ? "impgate" : "direct", options.latencyRate, figures.p50Us,
                 figures.p99Us, figures.p999Us);
        (impgatePath ? report.latencyImpgate : report.latencyDirect) = figures;
      }
    }
    bench.disconnectDevices();
  }
  bench.disconnectAgent();
  progress("stopping impgate and mosquitto");
  servers->impgate->stop();
  servers->broker->stop();
}

}  // namespace

std::string MessageCase::name() const {
  char text[96];
  std::snprintf(text, sizeof text, "%s %s %zuB %zu dev%s",
                direction == Direction::kDeviceToAgent ? "dev->agent" : "agent->dev",
                acknowledged ? "qos1" : "qos0", payload, devices,
                brokerDefault ? " broker-default" : "");
  return text;
}

void PathFigures::summarise() {
  std::vector<double> rates, gateway, broker, bench;
  for (const auto& run : runs) {
    sent += run.sent;
    received += run.received;
    lost += run.lost();
    receipts += run.receipts;
    receiptsNotDelivered += run.receiptsNotDelivered;
    refused += run.refused;
    if (!run.error.empty()) error = run.error;
    if (run.stalled) ++stalledRuns;
    if (run.cutOff) ++cutOffRuns;
    if (run.received == 0) continue;
    double per100k = 100000.0 / static_cast<double>(run.received);
    rates.push_back(run.messagesPerSecond());
    gateway.push_back(run.gatewayCpuSeconds * per100k);
    broker.push_back(run.brokerCpuSeconds * per100k);
    bench.push_back(run.benchCpuSeconds * per100k);
  }
  messagesPerSecond = median(rates);
  gatewayCpuPer100k = median(gateway);
  brokerCpuPer100k = median(broker);
  benchCpuPer100k = median(bench);
}

bool MessageReport::complete() const {
  if (!error.empty()) return false;
  for (const auto& c : cases) {
    if (c.impgate.runs.empty() || c.direct.runs.empty()) return false;
    if (!c.impgate.error.empty() || !c.direct.error.empty()) return false;
  }
  return true;
}

MessageReport runMessageBench(const MessageBenchOptions& options) {
  auto started = Clock::now();
  MessageReport report;
  report.options = options;
  describeMachine(report);
  report.impgateBinary = options.impgateBinary;
  report.impgateSha256 = fileSha256(options.impgateBinary);
  auto finish = [&] {
    for (auto& c : report.cases) {
      c.impgate.summarise();
      c.direct.summarise();
    }
    report.elapsedSeconds = seconds(Clock::now() - started);
    return report;
  };
  MessageBenchOptions resolved = options;
  resolved.mosquittoBinary = testbed::findMosquitto(options.mosquittoBinary);
  if (resolved.mosquittoBinary.empty()) {
    report.error = "mosquitto not found (PATH, /usr/sbin); use --mosquitto PATH";
    return finish();
  }
  if (::access(options.impgateBinary.c_str(), X_OK) != 0) {
    report.error = "impgate binary not found at " + options.impgateBinary;
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
  std::size_t fleetSize = *std::max_element(options.devices.begin(), options.devices.end());
  if (options.brokerDefault) fleetSize = std::max(fleetSize, options.brokerDefaultDevices);
  progress("creating a fleet CA and %zu device credentials", fleetSize);
  auto fleet = BenchFleet::create(scratch->path() / "home", fleetSize, error);
  if (!fleet) {
    report.error = error;
    return finish();
  }
  net::TlsClientOptions tlsOptions;
  tlsOptions.caFile = fleet->home().caCert().string();
  auto tls = net::TlsContext::client(tlsOptions);
  if (!tls) {
    report.error = tls.error().message;
    return finish();
  }
  runConfiguration(resolved, *fleet, **tls, scratch->path(), false, report);
  if (options.brokerDefault && report.error.empty() && !interrupted()) {
    runConfiguration(resolved, *fleet, **tls, scratch->path(), true, report);
  }
  if (interrupted() && report.error.empty()) report.error = "interrupted";
  progress("done; removing the temp dir");
  return finish();
}

}  // namespace impgate::bench
