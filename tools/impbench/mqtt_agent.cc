#include "tools/impbench/mqtt_agent.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "gateway/device/tls_client_connect.h"

namespace impgate::bench {

namespace mqtt = bus::mqtt;

MqttAgent::MqttAgent(net::EventLoop& loop, net::Endpoint broker, std::string clientId,
                     Events events)
    : loop_(loop), broker_(broker), clientId_(std::move(clientId)), events_(std::move(events)) {}

MqttAgent::~MqttAgent() {
  *alive_ = false;
  closeSocket();
}

void MqttAgent::connect() {
  closeSocket();
  auto started = device::startTcpConnect(broker_, std::nullopt);
  if (!started) {
    fail(started.error().message);
    return;
  }
  fd_ = *started;
  int one = 1;
  // The agent batches its writes itself; Nagle would only add delay.
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  state_ = State::kConnecting;
  interest_ = EPOLLOUT;
  if (!loop_.watch(fd_, interest_, this)) fail(std::string("epoll: ") + std::strerror(errno));
}

void MqttAgent::subscribe(std::span<const mqtt::SubscribeFilter> filters) {
  mqtt::encodeSubscribe(output_, mqtt::Version::k311, nextPacketId(), filters);
  scheduleFlush();
}

void MqttAgent::publish(std::string_view topic, std::span<const uint8_t> payload, uint8_t qos) {
  mqtt::PublishOptions options;
  options.topic = topic;
  options.payload = payload;
  options.qos = qos;
  if (qos > 0) {
    options.packetId = nextPacketId();
    ++unacknowledged_;
  }
  mqtt::encodePublish(output_, mqtt::Version::k311, options);
  scheduleFlush();
}

void MqttAgent::disconnect() {
  if (state_ == State::kConnected) {
    mqtt::encodeDisconnect(output_, mqtt::Version::k311, 0);
    flush();
  }
  closeSocket();
}

uint16_t MqttAgent::nextPacketId() {
  if (++packetId_ == 0) packetId_ = 1;
  return packetId_;
}

void MqttAgent::closeSocket() {
  if (fd_ >= 0) {
    loop_.unwatch(fd_);
    ::close(fd_);
    fd_ = -1;
  }
  interest_ = 0;
  state_ = State::kIdle;
  output_.clear();
  written_ = 0;
  input_.clear();
  unacknowledged_ = 0;
}

void MqttAgent::fail(const std::string& reason) {
  closeSocket();
  if (events_.onFailed) events_.onFailed(reason);
}

void MqttAgent::watchFor(uint32_t events) {
  if (events == interest_ || fd_ < 0) return;
  if (!loop_.rewatch(fd_, events, this)) {
    fail(std::string("epoll: ") + std::strerror(errno));
    return;
  }
  interest_ = events;
}

void MqttAgent::scheduleFlush() {
  if (flushScheduled_ || fd_ < 0 || state_ == State::kConnecting) return;
  flushScheduled_ = true;
  loop_.post([this, alive = alive_] {
    if (!*alive) return;
    flushScheduled_ = false;
    flush();
  });
}

void MqttAgent::flush() {
  while (fd_ >= 0 && written_ < output_.size()) {
    ssize_t n = ::send(fd_, output_.data() + written_, output_.size() - written_, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      watchFor(EPOLLIN | EPOLLOUT);
      return;
    }
    if (n < 0) {
      fail(std::string("write: ") + std::strerror(errno));
      return;
    }
    written_ += static_cast<std::size_t>(n);
  }
  if (fd_ < 0) return;
  output_.clear();
  written_ = 0;
  watchFor(EPOLLIN);
}

void MqttAgent::onIoEvents(uint32_t events) {
  if (state_ == State::kConnecting) {
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
      fail(std::string("connect: ") + std::strerror(error));
      return;
    }
    state_ = State::kAwaitConnack;
    mqtt::ConnectOptions options;
    options.version = mqtt::Version::k311;
    options.clientId = clientId_;
    options.keepAliveSeconds = 0;
    options.cleanStart = true;
    // The CONNECT goes before anything queued while connecting.
    mqtt::Bytes queued;
    queued.swap(output_);
    mqtt::encodeConnect(output_, options);
    output_.insert(output_.end(), queued.begin(), queued.end());
    flush();
    return;
  }
  if (events & EPOLLOUT) flush();
  if (fd_ >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) readAvailable();
}

void MqttAgent::readAvailable() {
  uint8_t buffer[65536];
  while (fd_ >= 0) {
    ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {
      fail(n == 0 ? "closed by broker" : std::string("read: ") + std::strerror(errno));
      return;
    }
    input_.insert(input_.end(), buffer, buffer + n);
    std::size_t used = 0;
    while (fd_ >= 0) {
      mqtt::Packet packet;
      auto decoded = mqtt::nextPacket(std::span<const uint8_t>(input_).subspan(used), 0, packet);
      if (decoded.status == mqtt::DecodeStatus::kNeedMore) break;
      if (decoded.status == mqtt::DecodeStatus::kMalformed) {
        fail(std::string("malformed packet from broker: ") + decoded.error);
        return;
      }
      used += packet.size;
      handle(packet);
    }
    if (fd_ < 0) return;
    input_.erase(input_.begin(), input_.begin() + static_cast<std::ptrdiff_t>(used));
    if (static_cast<std::size_t>(n) < sizeof buffer) break;  // the socket is drained
  }
  // Every PUBACK this read produced, in one write.
  if (fd_ >= 0 && !output_.empty()) flush();
}

void MqttAgent::handle(const mqtt::Packet& packet) {
  switch (packet.type) {
    case mqtt::PacketType::kConnack: {
      mqtt::Connack connack;
      if (mqtt::decodeConnack(packet, connack).status != mqtt::DecodeStatus::kOk ||
          connack.code != 0) {
        fail("CONNACK refused, code " + std::to_string(connack.code));
        return;
      }
      state_ = State::kConnected;
      if (events_.onConnected) events_.onConnected();
      return;
    }
    case mqtt::PacketType::kPublish: {
      mqtt::PublishIn publish;
      if (mqtt::decodePublish(packet, mqtt::Version::k311, publish).status !=
          mqtt::DecodeStatus::kOk) {
        fail("malformed PUBLISH");
        return;
      }
      if (publish.qos == 1) mqtt::encodePuback(output_, publish.packetId);
      if (events_.onPublish) events_.onPublish(publish.topic, publish.payload, publish.qos);
      return;
    }
    case mqtt::PacketType::kPuback:
      if (unacknowledged_ > 0) --unacknowledged_;
      if (events_.onPuback) events_.onPuback();
      return;
    case mqtt::PacketType::kSuback:
      if (events_.onSubscribed) events_.onSubscribed();
      return;
    default:
      return;  // PINGRESP and the like: nothing to do
  }
}

}  // namespace impgate::bench
