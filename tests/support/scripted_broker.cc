#include "tests/support/scripted_broker.h"

#include <linux/tcp.h>  // struct tcp_info with tcpi_data_segs_in (glibc's lacks it)
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "gateway/base/net/socket.h"

namespace impgate::testing {

using bus::mqtt::Bytes;
using bus::mqtt::PacketType;
using bus::mqtt::Version;

namespace {

void putLength(Bytes& out, std::size_t length) {
  do {
    uint8_t byte = length & 0x7F;
    length >>= 7;
    if (length > 0) byte |= 0x80;
    out.push_back(byte);
  } while (length > 0);
}

void put16(Bytes& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

void put32(Bytes& out, uint32_t v) {
  put16(out, static_cast<uint16_t>(v >> 16));
  put16(out, static_cast<uint16_t>(v));
}

// A packet: fixed header byte, remaining length, body.
void putPacket(Bytes& out, uint8_t header, const Bytes& body) {
  out.push_back(header);
  putLength(out, body.size());
  out.insert(out.end(), body.begin(), body.end());
}

Bytes connack(const ConnackScript& script) {
  Bytes body{0x00, script.code};
  if (!script.as311) {
    Bytes props;
    if (script.receiveMaximum) {
      props.push_back(0x21);
      put16(props, *script.receiveMaximum);
    }
    if (script.serverKeepAlive) {
      props.push_back(0x13);
      put16(props, *script.serverKeepAlive);
    }
    if (script.maximumPacketSize) {
      props.push_back(0x27);
      put32(props, *script.maximumPacketSize);
    }
    putLength(body, props.size());
    body.insert(body.end(), props.begin(), props.end());
  }
  Bytes out;
  putPacket(out, 0x20, body);
  return out;
}

}  // namespace

struct ScriptedBroker::Connection final : net::IoHandler {
  ScriptedBroker* broker = nullptr;
  int number = 0;
  int fd = -1;
  Version version = Version::k5;
  Bytes in;
  Bytes out;
  std::deque<uint16_t> withheld;
  bool watchingOut = false;
  void onIoEvents(uint32_t events) override {
    if (events & EPOLLOUT) broker->flushOut(*this);
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) broker->onReadable(*this);
  }
};

ScriptedBroker::ScriptedBroker(net::EventLoop& loop) : loop_(loop) {
  auto endpoint = net::parseEndpoint("127.0.0.1:0");
  if (!endpoint) throw std::runtime_error("scripted broker: bad endpoint");
  auto fd = net::listenOn(*endpoint, false, 16);
  if (!fd) throw std::runtime_error("scripted broker: cannot listen: " + fd.error().message);
  listenFd_ = *fd;
  port_ = net::boundPort(listenFd_);
  if (!loop_.watch(listenFd_, EPOLLIN, this)) {
    throw std::runtime_error("scripted broker: cannot watch the listening socket");
  }
}

ScriptedBroker::~ScriptedBroker() {
  if (current_) {
    loop_.unwatch(current_->fd);
    ::close(current_->fd);
  }
  loop_.unwatch(listenFd_);
  ::close(listenFd_);
}

void ScriptedBroker::onIoEvents(uint32_t) {
  accept();
}

void ScriptedBroker::accept() {
  for (;;) {
    int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (current_) close(*current_, false);  // the client has moved on
    net::setNoDelay(fd);
    current_ = std::make_unique<Connection>();
    current_->broker = this;
    current_->number = ++accepted_;
    current_->fd = fd;
    if (!loop_.watch(fd, EPOLLIN, current_.get())) {
      throw std::runtime_error("scripted broker: cannot watch a connection");
    }
  }
}

void ScriptedBroker::onReadable(Connection& c) {
  uint8_t chunk[256 * 1024];
  for (;;) {
    ssize_t n = ::recv(c.fd, chunk, sizeof chunk, 0);
    if (n > 0) {
      ++reads_;
      c.in.insert(c.in.end(), chunk, chunk + n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0 && errno == EINTR) continue;
    // End of stream or an error: handle what came before it, then forget the connection.
    break;
  }
  const int number = c.number;
  std::size_t head = 0;
  for (;;) {
    bus::mqtt::Packet packet;
    auto d = bus::mqtt::nextPacket(std::span(c.in).subspan(head), 0, packet);
    if (d.status != bus::mqtt::DecodeStatus::kOk) break;
    head += packet.size;
    handle(c, packet);
  }
  c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(head));
  flushOut(c);
  // A peer that closed is seen as readable with nothing to read.
  if (current_ && current_->number == number) {
    char probe;
    ssize_t n = ::recv(c.fd, &probe, 1, MSG_PEEK);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) close(c, true);
  }
}

void ScriptedBroker::handle(Connection& c, const bus::mqtt::Packet& packet) {
  ReceivedPacket r;
  r.connection = c.number;
  r.type = packet.type;
  r.flags = packet.flags;
  r.body.assign(packet.body.begin(), packet.body.end());
  switch (packet.type) {
    case PacketType::kConnect: {
      const auto& b = r.body;
      if (b.size() >= 10) {
        std::size_t nameLength = static_cast<std::size_t>((b[0] << 8) | b[1]);
        r.protocolName.assign(b.begin() + 2, b.begin() + 2 + std::min(nameLength, b.size() - 2));
        std::size_t at = 2 + nameLength;
        if (at + 4 <= b.size()) {
          r.protocolLevel = b[at];
          r.keepAlive = static_cast<uint16_t>((b[at + 2] << 8) | b[at + 3]);
        }
      }
      c.version = r.protocolLevel == 4 ? Version::k311 : Version::k5;
      ConnackScript script = defaultConnack;
      if (!connacks.empty()) {
        script = connacks.front();
        connacks.pop_front();
      }
      if (!script.silent) {
        Bytes out = connack(script);
        c.out.insert(c.out.end(), out.begin(), out.end());
      }
      break;
    }
    case PacketType::kPublish: {
      bus::mqtt::PublishIn in;
      if (bus::mqtt::decodePublish(packet, c.version, in).status == bus::mqtt::DecodeStatus::kOk) {
        r.topic = std::string(in.topic);
        r.payload.assign(in.payload.begin(), in.payload.end());
        r.qos = in.qos;
        r.packetId = in.packetId;
        r.retain = in.retain;
        if (c.version == Version::k5) {
          std::size_t at = 2 + in.topic.size() + (in.qos > 0 ? 2 : 0);
          r.hasProperties = at < r.body.size() && r.body[at] != 0;
        }
      } else {
        r.topic = "<malformed>";
      }
      if (r.qos == 1) {
        if (autoPuback) {
          bus::mqtt::encodePuback(c.out, r.packetId);
        } else {
          c.withheld.push_back(r.packetId);
        }
      }
      break;
    }
    case PacketType::kSubscribe: {
      // SUBACK granting QoS 1 to every filter (counted roughly: one per filter is enough for
      // the link, which only logs refusals).
      Bytes body;
      put16(body, static_cast<uint16_t>((r.body[0] << 8) | r.body[1]));
      if (c.version == Version::k5) body.push_back(0);
      body.push_back(1);
      putPacket(c.out, 0x90, body);
      break;
    }
    case PacketType::kPingreq:
      if (answerPings) c.out.insert(c.out.end(), {0xD0, 0x00});
      break;
    case PacketType::kDisconnect:
      r.reasonCode = r.body.empty() ? 0 : r.body[0];
      break;
    default:
      break;
  }
  received.push_back(std::move(r));
}

void ScriptedBroker::write(Connection& c, std::span<const uint8_t> bytes) {
  c.out.insert(c.out.end(), bytes.begin(), bytes.end());
  flushOut(c);
}

void ScriptedBroker::flushOut(Connection& c) {
  std::size_t done = 0;
  while (done < c.out.size()) {
    ssize_t n = ::send(c.fd, c.out.data() + done, c.out.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;  // full (wait for EPOLLOUT) or broken (the read side will see it)
  }
  c.out.erase(c.out.begin(), c.out.begin() + static_cast<std::ptrdiff_t>(done));
  bool wantOut = !c.out.empty();
  if (wantOut != c.watchingOut) {
    c.watchingOut = wantOut;
    (void)loop_.rewatch(c.fd, EPOLLIN | (wantOut ? EPOLLOUT : 0u), &c);
  }
}

void ScriptedBroker::close(Connection& c, bool byClient) {
  if (byClient) ++closedByClient_;
  loop_.unwatch(c.fd);
  ::close(c.fd);
  c.fd = -1;
  if (current_.get() == &c) loop_.deferDelete(std::move(current_));
}

void ScriptedBroker::releasePubacks(std::size_t count, uint8_t reasonCode) {
  if (!current_) return;
  Bytes out;
  for (std::size_t i = 0; i < count && !current_->withheld.empty(); ++i) {
    uint16_t id = current_->withheld.front();
    current_->withheld.pop_front();
    if (reasonCode == 0) {
      bus::mqtt::encodePuback(out, id);
    } else {
      Bytes body;
      put16(body, id);
      body.push_back(reasonCode);
      putPacket(out, 0x40, body);
    }
  }
  write(*current_, out);
}

std::size_t ScriptedBroker::withheldPubacks() const {
  return current_ ? current_->withheld.size() : 0;
}

void ScriptedBroker::sendPublishes(std::string_view topic, std::size_t count, uint8_t qos) {
  if (!current_) return;
  Bytes out;
  for (std::size_t i = 0; i < count; ++i) {
    std::string payload = "m" + std::to_string(i);
    bus::mqtt::PublishOptions p;
    p.topic = topic;
    p.payload = std::span(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
    p.qos = qos;
    p.packetId = qos > 0 ? static_cast<uint16_t>(i + 1) : 0;
    bus::mqtt::encodePublish(out, current_->version, p);
  }
  write(*current_, out);
}

void ScriptedBroker::sendPublish(std::string_view topic, std::string_view payload, uint8_t qos) {
  if (!current_) return;
  Bytes out;
  bus::mqtt::PublishOptions p;
  p.topic = topic;
  p.payload = std::span(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
  p.qos = qos;
  p.packetId = qos > 0 ? 1 : 0;
  bus::mqtt::encodePublish(out, current_->version, p);
  write(*current_, out);
}

void ScriptedBroker::sendDisconnect(uint8_t reasonCode, std::string_view reasonString) {
  if (!current_) return;
  Bytes body{reasonCode};
  Bytes props;
  if (!reasonString.empty()) {
    props.push_back(0x1F);
    put16(props, static_cast<uint16_t>(reasonString.size()));
    props.insert(props.end(), reasonString.begin(), reasonString.end());
  }
  putLength(body, props.size());
  body.insert(body.end(), props.begin(), props.end());
  Bytes out;
  putPacket(out, 0xE0, body);
  write(*current_, out);
}

void ScriptedBroker::sendRaw(std::span<const uint8_t> bytes) {
  if (current_) write(*current_, bytes);
}

void ScriptedBroker::dropConnection() {
  if (current_) close(*current_, false);
}

int ScriptedBroker::connectionFd() const {
  return current_ ? current_->fd : -1;
}

uint64_t ScriptedBroker::dataSegmentsIn() const {
  if (!current_) return 0;
  tcp_info info{};
  socklen_t length = sizeof info;
  if (::getsockopt(current_->fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return 0;
  return info.tcpi_data_segs_in;
}

std::vector<const ReceivedPacket*> ScriptedBroker::packets(PacketType type) const {
  std::vector<const ReceivedPacket*> found;
  for (const auto& r : received) {
    if (r.type == type) found.push_back(&r);
  }
  return found;
}

}  // namespace impgate::testing
