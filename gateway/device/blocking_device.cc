#include "gateway/device/blocking_device.h"

#include <csignal>

namespace impgate::device {

Result<std::unique_ptr<BlockingDevice>> BlockingDevice::create(const BlockingDeviceConfig& config) {
  // A reset connection must be an error value, not a SIGPIPE that ends the process.
  std::signal(SIGPIPE, SIG_IGN);
  auto loaded = DeviceCredentials::load(config.certFile, config.keyFile);
  if (!loaded) return loaded.error();
  std::shared_ptr<DeviceCredentials> credentials = std::move(*loaded);
  net::TlsClientOptions tlsOptions;
  tlsOptions.caFile = config.caFile;
  tlsOptions.allowTls12 = config.allowTls12;
  std::unique_ptr<BlockingDevice> d(new BlockingDevice());
  d->callTimeout_ = config.callTimeout;
  auto tls = net::TlsContext::client(tlsOptions);
  if (!tls) return Error{ErrorCode::kTls, tls.error().message};
  d->tls_ = std::move(*tls);
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
  handlers.onCode = [self](const CodeEvent& event) {
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->codeEvents_.push_back(event);
    self->changed_.notify_all();
  };
  d->client_ = std::make_unique<DeviceClient>(d->loop_, *d->tls_, std::move(credentials),
                                              config.options, std::move(handlers));
  d->codePush_ = d->client_->codePushEnabled();
  d->thread_ = std::thread([self] {
    if (std::error_code failed = self->loop_.run()) {
      // The device thread cannot go on: every waiting call hears why instead of timing out.
      std::lock_guard<std::mutex> lock(self->mutex_);
      self->online_ = false;
      self->offlineReason_ = "device event loop failed: " + failed.message();
      self->changed_.notify_all();
    }
  });
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

bool BlockingDevice::call(const std::function<void()>& fn) {
  // Shared with the posted task, which may outlive this call when it timed out; `fn` itself
  // lives in the caller's frame and is only touched while the caller still waits for it.
  struct Pending {
    enum class Stage { kQueued, kRunning, kDone, kAbandoned };
    std::mutex mutex;
    std::condition_variable changed;
    Stage stage = Stage::kQueued;
  };
  using Stage = Pending::Stage;
  auto pending = std::make_shared<Pending>();
  const std::function<void()>* work = &fn;
  loop_.post([pending, work] {
    {
      std::lock_guard<std::mutex> lock(pending->mutex);
      if (pending->stage == Stage::kAbandoned) return;
      pending->stage = Stage::kRunning;
    }
    (*work)();
    {
      std::lock_guard<std::mutex> lock(pending->mutex);
      pending->stage = Stage::kDone;
    }
    pending->changed.notify_all();
  });
  std::unique_lock<std::mutex> lock(pending->mutex);
  if (pending->changed.wait_for(lock, callTimeout_,
                                [&] { return pending->stage == Stage::kDone; })) {
    return true;
  }
  if (pending->stage == Stage::kQueued) {
    pending->stage = Stage::kAbandoned;
    return false;
  }
  // Started just now: DeviceClient calls do not block, and `fn` must not outlive this frame.
  pending->changed.wait(lock, [&] { return pending->stage == Stage::kDone; });
  return true;
}

Status BlockingDevice::connect(std::chrono::milliseconds timeout) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    offlineReason_.reset();
  }
  if (!call([this] { client_->connect(); })) {
    return Error{ErrorCode::kBusy, "device thread busy"};
  }
  std::unique_lock<std::mutex> lock(mutex_);
  bool done = changed_.wait_for(lock, timeout, [this] { return online_ || offlineReason_; });
  if (online_) return {};
  if (done) return Error{ErrorCode::kOffline, *offlineReason_};
  return Error{ErrorCode::kTimeout, "timed out waiting for WELCOME"};
}

Result<protocol::AckStatus> BlockingDevice::send(const std::string& event,
                                                 const std::string& payload, bool ackWanted,
                                                 std::chrono::milliseconds timeout) {
  uint32_t id = 0;
  SendError sent = SendError::kNotConnected;
  bool ran = call([&] {
    auto bytes =
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
    sent = client_->send(event, bytes, ackWanted, &id);
  });
  if (!ran) return Error{ErrorCode::kBusy, "device thread busy"};
  if (sent != SendError::kNone) return Error{ErrorCode::kNotSent, std::string(sendErrorName(sent))};
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
  if (status) return *status;
  if (online_) return Error{ErrorCode::kTimeout, "timed out waiting for ACK"};
  return Error{ErrorCode::kOffline, "disconnected before ACK"};
}

bool BlockingDevice::log(protocol::LogLevel level, const std::string& text) {
  SendError sent = SendError::kNotConnected;
  return call([&] { sent = client_->log(level, text); }) && sent == SendError::kNone;
}

bool BlockingDevice::writeRaw(std::string bytes) {
  return call([&] {
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

std::optional<CodeEvent> BlockingDevice::nextCodeEvent(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!changed_.wait_for(lock, timeout, [this] { return !codeEvents_.empty(); })) {
    return std::nullopt;
  }
  CodeEvent e = std::move(codeEvents_.front());
  codeEvents_.pop_front();
  return e;
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
  bool resumed = false;
  return call([&] { resumed = client_->lastHandshakeResumed(); }) && resumed;
}

bool BlockingDevice::disconnect() {
  bool done = call([this] { client_->disconnect(); });
  std::lock_guard<std::mutex> lock(mutex_);
  online_ = false;
  return done;
}

}  // namespace impgate::device
