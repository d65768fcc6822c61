#include "gateway/device/blocking_device.h"

#include <csignal>
#include <future>

namespace impgate::device {

std::unique_ptr<BlockingDevice> BlockingDevice::create(const BlockingDeviceConfig& config,
                                                       std::string& error) {
  // A reset connection must be an error value, not a SIGPIPE that ends the process.
  std::signal(SIGPIPE, SIG_IGN);
  auto credentials = DeviceCredentials::load(config.certFile, config.keyFile, error);
  if (!credentials) return nullptr;
  net::TlsClientOptions tlsOptions;
  tlsOptions.caFile = config.caFile;
  tlsOptions.allowTls12 = config.allowTls12;
  std::unique_ptr<BlockingDevice> d(new BlockingDevice());
  d->tls_ = net::TlsContext::client(tlsOptions, error);
  if (!d->tls_) return nullptr;
  BlockingDevice* self = d.get();
  DeviceClient::Handlers handlers;
  handlers.onOnline = [self](const protocol::Welcome&) {
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->online_ = true;
    self->offlineReason_.reset();
    self->changed_.notify_all();
  };
  handlers.onOffline = [self](const std::string& reason) {
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->online_ = false;
    self->offlineReason_ = reason;
    self->changed_.notify_all();
  };
  handlers.onMessage = [self](std::string_view event, std::span<const uint8_t> payload) {
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->inbox_.push_back(
        {std::string(event),
         std::string(reinterpret_cast<const char*>(payload.data()), payload.size())});
    self->changed_.notify_all();
  };
  handlers.onAck = [self](uint32_t id, protocol::AckStatus status) {
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->acks_.emplace_back(id, status);
    self->changed_.notify_all();
  };
  d->client_ = std::make_unique<DeviceClient>(d->loop_, *d->tls_, std::move(credentials),
                                              config.options, std::move(handlers));
  d->thread_ = std::thread([self] { self->loop_.run(); });
  return d;
}

BlockingDevice::~BlockingDevice() {
  if (thread_.joinable()) {
    call([this] { client_->disconnect(); });
    loop_.stop();
    thread_.join();
  }
  client_.reset();
}

template <typename Fn>
auto BlockingDevice::call(Fn&& fn) -> decltype(fn()) {
  std::packaged_task<decltype(fn())()> task(std::forward<Fn>(fn));
  auto result = task.get_future();
  loop_.post([&task] { task(); });
  return result.get();
}

bool BlockingDevice::connect(std::chrono::milliseconds timeout, std::string& error) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    offlineReason_.reset();
  }
  call([this] { client_->connect(); });
  std::unique_lock<std::mutex> lock(mutex_);
  bool done = changed_.wait_for(lock, timeout, [this] { return online_ || offlineReason_; });
  if (online_) return true;
  error = done ? *offlineReason_ : "timed out waiting for WELCOME";
  return false;
}

std::optional<protocol::AckStatus> BlockingDevice::send(const std::string& event,
                                                        const std::string& payload, bool ackWanted,
                                                        std::chrono::milliseconds timeout,
                                                        std::string& error) {
  uint32_t id = 0;
  SendError sent = call([&] {
    auto bytes =
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
    return client_->send(event, bytes, ackWanted, &id);
  });
  if (sent != SendError::kNone) {
    error = std::string(sendErrorName(sent));
    return std::nullopt;
  }
  if (!ackWanted) return protocol::AckStatus::kOk;
  std::unique_lock<std::mutex> lock(mutex_);
  std::optional<protocol::AckStatus> status;
  changed_.wait_for(lock, timeout, [&] {
    for (auto it = acks_.begin(); it != acks_.end(); ++it) {
      if (it->first == id) {
        status = it->second;
        acks_.erase(it);
        return true;
      }
    }
    return !online_;
  });
  if (!status) error = online_ ? "timed out waiting for ACK" : "disconnected before ACK";
  return status;
}

bool BlockingDevice::log(protocol::LogLevel level, const std::string& text) {
  return call([&] { return client_->log(level, text); }) == SendError::kNone;
}

void BlockingDevice::writeRaw(std::string bytes) {
  call([&] {
    client_->writeRaw(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  });
}

std::optional<ReceivedMessage> BlockingDevice::nextMessage(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!changed_.wait_for(lock, timeout, [this] { return !inbox_.empty(); })) return std::nullopt;
  ReceivedMessage m = std::move(inbox_.front());
  inbox_.pop_front();
  return m;
}

std::optional<std::string> BlockingDevice::waitOffline(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!changed_.wait_for(lock, timeout, [this] { return !online_ && offlineReason_; })) {
    return std::nullopt;
  }
  return offlineReason_;
}

bool BlockingDevice::online() {
  std::lock_guard<std::mutex> lock(mutex_);
  return online_;
}

bool BlockingDevice::resumed() {
  return call([this] { return client_->lastHandshakeResumed(); });
}

void BlockingDevice::disconnect() {
  call([this] { client_->disconnect(); });
  std::lock_guard<std::mutex> lock(mutex_);
  online_ = false;
}

}  // namespace impgate::device
