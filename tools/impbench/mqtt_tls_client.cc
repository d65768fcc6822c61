#include "tools/impbench/mqtt_tls_client.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cstring>

#include "gateway/device/tls_client_connect.h"

namespace impgate::bench {
namespace {

constexpr uint8_t kConnect = 0x10;
constexpr uint8_t kDisconnect = 0xE0;
constexpr uint8_t kProtocolLevel311 = 4;
constexpr uint8_t kCleanSession = 0x02;

// CONNECT for MQTT 3.1.1: protocol name and level, clean session, keepalive 0 (an idle client
// is never pinged or dropped), the client id as payload.
std::vector<uint8_t> connectPacket(const std::string& clientId) {
  std::vector<uint8_t> variable = {0x00,          0x04, 'M', 'Q', 'T', 'T', kProtocolLevel311,
                                   kCleanSession, 0x00, 0x00};
  variable.push_back(static_cast<uint8_t>(clientId.size() >> 8));
  variable.push_back(static_cast<uint8_t>(clientId.size() & 0xff));
  variable.insert(variable.end(), clientId.begin(), clientId.end());
  std::vector<uint8_t> packet = {kConnect};
  // Remaining length, variable-length encoded.
  std::size_t remaining = variable.size();
  do {
    uint8_t digit = remaining % 128;
    remaining /= 128;
    if (remaining > 0) digit |= 0x80;
    packet.push_back(digit);
  } while (remaining > 0);
  packet.insert(packet.end(), variable.begin(), variable.end());
  return packet;
}

}  // namespace

MqttTlsClient::MqttTlsClient(net::EventLoop& loop, const net::TlsContext& tls,
                             std::shared_ptr<device::DeviceCredentials> credentials,
                             std::string clientId, net::Endpoint broker,
                             std::optional<net::Endpoint> source, Events events)
    : loop_(loop),
      tls_(tls),
      credentials_(std::move(credentials)),
      clientId_(std::move(clientId)),
      broker_(broker),
      source_(source),
      events_(std::move(events)) {}

MqttTlsClient::~MqttTlsClient() {
  closeSocket();
  if (session_) SSL_SESSION_free(session_);
}

void MqttTlsClient::connect() {
  closeSocket();
  auto started = device::startTcpConnect(broker_, source_);
  if (!started) {
    fail(started.error().message);
    return;
  }
  fd_ = *started;
  state_ = State::kConnecting;
  resumed_ = false;
  input_.clear();
  interest_ = EPOLLOUT;
  if (!loop_.watch(fd_, interest_, this)) {
    fail(std::string("epoll: ") + std::strerror(errno));
  }
}

void MqttTlsClient::disconnect() {
  if (transport_ && state_ == State::kConnected) {
    const uint8_t bye[2] = {kDisconnect, 0x00};
    transport_->write(std::span<const uint8_t>(bye, sizeof bye));
    transport_->shutdown();
  }
  closeSocket();
}

void MqttTlsClient::closeSocket() {
  // The transport's destructor keeps the session resumable even without a close_notify.
  transport_.reset();
  if (fd_ >= 0) {
    loop_.unwatch(fd_);
    ::close(fd_);
    fd_ = -1;
  }
  interest_ = 0;
  output_.clear();
  written_ = 0;
  state_ = State::kIdle;
}

void MqttTlsClient::fail(const std::string& reason) {
  closeSocket();
  if (events_.onFailed) events_.onFailed(reason);
}

void MqttTlsClient::watchFor(uint32_t events) {
  if (events == interest_ || fd_ < 0) return;
  if (!loop_.rewatch(fd_, events, this)) {
    fail(std::string("epoll: ") + std::strerror(errno));
    return;
  }
  interest_ = events;
}

void MqttTlsClient::onIoEvents(uint32_t events) {
  switch (state_) {
    case State::kConnecting:
      onSocketConnected();
      return;
    case State::kHandshake:
      driveHandshake();
      return;
    case State::kAwaitConnack:
    case State::kConnected:
      if (events & EPOLLOUT) flush();
      if (fd_ >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) readAvailable();
      return;
    case State::kIdle:
      return;
  }
}

void MqttTlsClient::onSocketConnected() {
  // The broker presents the gateway's certificate, issued for 127.0.0.1.
  auto transport = device::startTlsClient(fd_, tls_, "127.0.0.1", session_, *credentials_);
  if (!transport) {
    fail(transport.error().message);
    return;
  }
  transport_ = std::move(*transport);
  state_ = State::kHandshake;
  driveHandshake();
}

void MqttTlsClient::driveHandshake() {
  device::HandshakeStep step = device::stepHandshake(*transport_);
  if (!step.error.empty()) {
    fail(step.error);
    return;
  }
  if (!step.done) {
    watchFor(step.watch);
    return;
  }
  resumed_ = transport_->resumed();
  state_ = State::kAwaitConnack;
  output_ = connectPacket(clientId_);
  written_ = 0;
  watchFor(EPOLLIN);
  if (fd_ < 0) return;  // watchFor() failed the connection
  flush();
  if (fd_ >= 0) readAvailable();
}

bool MqttTlsClient::send(std::span<const uint8_t> bytes) {
  if (state_ != State::kConnected || fd_ < 0) return false;
  output_.insert(output_.end(), bytes.begin(), bytes.end());
  // Already waiting for EPOLLOUT: the bytes go out with the rest.
  if (output_.size() > bytes.size()) return true;
  flush();
  return fd_ >= 0;
}

void MqttTlsClient::flush() {
  while (written_ < output_.size()) {
    auto r = transport_->write(std::span<const uint8_t>(output_).subspan(written_));
    if (r.status == net::IoStatus::kWantWrite || r.status == net::IoStatus::kWantRead) {
      watchFor(EPOLLIN | EPOLLOUT);
      return;
    }
    if (r.status != net::IoStatus::kOk) {
      fail("write: " + transport_->lastError());
      return;
    }
    written_ += r.bytes;
  }
  output_.clear();
  written_ = 0;
  watchFor(EPOLLIN);
}

void MqttTlsClient::readAvailable() {
  uint8_t buffer[16384];
  while (fd_ >= 0) {
    auto r = transport_->read(std::span<uint8_t>(buffer, sizeof buffer));
    if (r.status == net::IoStatus::kWantRead) return;
    if (r.status == net::IoStatus::kWantWrite) {
      watchFor(interest_ | EPOLLOUT);
      return;
    }
    if (r.status != net::IoStatus::kOk) {
      fail(r.status == net::IoStatus::kClosed ? "closed by broker"
                                              : "connection lost: " + transport_->lastError());
      return;
    }
    input_.insert(input_.end(), buffer, buffer + r.bytes);
    std::size_t used = 0;
    while (fd_ >= 0) {
      bus::mqtt::Packet packet;
      auto decoded =
          bus::mqtt::nextPacket(std::span<const uint8_t>(input_).subspan(used), 0, packet);
      if (decoded.status == bus::mqtt::DecodeStatus::kNeedMore) break;
      if (decoded.status == bus::mqtt::DecodeStatus::kMalformed) {
        fail(std::string("malformed packet from broker: ") + decoded.error);
        return;
      }
      used += packet.size;
      if (state_ == State::kAwaitConnack) {
        bus::mqtt::Connack connack;
        if (packet.type != bus::mqtt::PacketType::kConnack ||
            bus::mqtt::decodeConnack(packet, connack).status != bus::mqtt::DecodeStatus::kOk) {
          fail("expected CONNACK");
          return;
        }
        if (connack.code != 0) {
          fail("CONNACK refused, return code " + std::to_string(connack.code));
          return;
        }
        // The broker's tickets arrive right after the handshake, before CONNACK: keep the
        // newest.
        if (SSL_SESSION* s = transport_->takeSession()) {
          if (session_) SSL_SESSION_free(session_);
          session_ = s;
        }
        state_ = State::kConnected;
        if (events_.onConnected) events_.onConnected();
      } else if (state_ == State::kConnected && events_.onPacket) {
        events_.onPacket(packet);
      }
    }
    if (fd_ < 0) return;
    input_.erase(input_.begin(), input_.begin() + static_cast<std::ptrdiff_t>(used));
  }
}

}  // namespace impgate::bench
