#include "bus/mqtt/mqtt_codec.h"

#include <cassert>

namespace impgate::bus::mqtt {
namespace {

// MQTT 5 property identifiers the link writes or reads.
enum Property : uint8_t {
  kPayloadFormat = 0x01,
  kMessageExpiry = 0x02,
  kContentType = 0x03,
  kResponseTopic = 0x08,
  kCorrelationData = 0x09,
  kSubscriptionId = 0x0B,
  kSessionExpiry = 0x11,
  kAssignedClientId = 0x12,
  kServerKeepAlive = 0x13,
  kAuthMethod = 0x15,
  kAuthData = 0x16,
  kRequestProblemInfo = 0x17,
  kWillDelay = 0x18,
  kRequestResponseInfo = 0x19,
  kResponseInfo = 0x1A,
  kServerReference = 0x1C,
  kReasonString = 0x1F,
  kReceiveMaximum = 0x21,
  kTopicAliasMaximum = 0x22,
  kTopicAlias = 0x23,
  kMaximumQos = 0x24,
  kRetainAvailable = 0x25,
  kUserProperty = 0x26,
  kMaximumPacketSize = 0x27,
  kWildcardAvailable = 0x28,
  kSubscriptionIdAvailable = 0x29,
  kSharedAvailable = 0x2A,
};

std::size_t varIntSize(std::size_t value) {
  return value < 128 ? 1 : value < 16384 ? 2 : value < 2097152 ? 3 : 4;
}

void putVarInt(Bytes& out, std::size_t value) {
  do {
    auto byte = static_cast<uint8_t>(value % 128);
    value /= 128;
    if (value > 0) byte |= 0x80;
    out.push_back(byte);
  } while (value > 0);
}

void putU16(Bytes& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}

void putU32(Bytes& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(value >> shift));
}

void putBytes(Bytes& out, const void* data, std::size_t size) {
  auto* p = static_cast<const uint8_t*>(data);
  out.insert(out.end(), p, p + size);
}

// A string or binary field: two length bytes and the bytes. Callers keep fields under 64 KiB
// (topics and client ids are checked by their owners).
void putField(Bytes& out, std::string_view field) {
  assert(field.size() <= 0xFFFF);
  putU16(out, static_cast<uint16_t>(field.size()));
  putBytes(out, field.data(), field.size());
}

std::size_t fieldSize(std::string_view field) {
  return 2 + field.size();
}

void putHeader(Bytes& out, uint8_t firstByte, std::size_t remaining) {
  out.push_back(firstByte);
  putVarInt(out, remaining);
}

std::size_t publishPropertiesSize(const PublishOptions& p) {
  std::size_t size = 0;
  if (!p.responseTopic.empty()) size += 1 + fieldSize(p.responseTopic);
  if (!p.correlationData.empty()) size += 1 + fieldSize(p.correlationData);
  return size;
}

std::size_t publishRemaining(Version version, const PublishOptions& p) {
  std::size_t remaining = fieldSize(p.topic) + (p.qos > 0 ? 2 : 0) + p.payload.size();
  if (version == Version::k5) {
    std::size_t props = publishPropertiesSize(p);
    remaining += varIntSize(props) + props;
  }
  return remaining;
}

// Reads fields from a packet body; every read checks the bounds and marks the reader failed.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  bool ok() const { return ok_; }
  bool done() const { return pos_ == bytes_.size(); }
  std::size_t remaining() const { return bytes_.size() - pos_; }

  uint8_t u8() {
    if (!need(1)) return 0;
    return bytes_[pos_++];
  }
  uint16_t u16() {
    if (!need(2)) return 0;
    uint16_t v = static_cast<uint16_t>(bytes_[pos_] << 8 | bytes_[pos_ + 1]);
    pos_ += 2;
    return v;
  }
  uint32_t u32() {
    if (!need(4)) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = v << 8 | bytes_[pos_ + i];
    pos_ += 4;
    return v;
  }
  std::size_t varInt() {
    std::size_t value = 0;
    for (int i = 0; i < 4; ++i) {
      uint8_t byte = u8();
      if (!ok_) return 0;
      value |= static_cast<std::size_t>(byte & 0x7F) << (7 * i);
      if (!(byte & 0x80)) return value;
    }
    ok_ = false;
    return 0;
  }
  std::string_view field() {
    uint16_t size = u16();
    if (!need(size)) return {};
    std::string_view v(reinterpret_cast<const char*>(bytes_.data() + pos_), size);
    pos_ += size;
    return v;
  }
  std::span<const uint8_t> rest() {
    auto v = bytes_.subspan(pos_);
    pos_ = bytes_.size();
    return v;
  }
  // The next `size` bytes as their own reader (for a property list).
  Reader sub(std::size_t size) {
    if (!need(size)) return Reader({});
    Reader r(bytes_.subspan(pos_, size));
    pos_ += size;
    return r;
  }
  void fail() { ok_ = false; }

 private:
  bool need(std::size_t n) {
    if (ok_ && bytes_.size() - pos_ >= n) return true;
    ok_ = false;
    return false;
  }

  std::span<const uint8_t> bytes_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

// Walks an MQTT 5 property list, handing each property to `take(id, reader)`, which reads the
// value of the properties it knows and returns false for the others; those are skipped by
// their type. An unknown identifier is malformed (its length cannot be known).
template <typename Take>
bool readProperties(Reader& body, Take take) {
  std::size_t length = body.varInt();
  Reader props = body.sub(length);
  if (!body.ok()) return false;
  while (props.ok() && !props.done()) {
    auto id = static_cast<Property>(props.u8());
    if (take(id, props)) continue;
    switch (id) {
      case kPayloadFormat:
      case kRequestProblemInfo:
      case kRequestResponseInfo:
      case kMaximumQos:
      case kRetainAvailable:
      case kWildcardAvailable:
      case kSubscriptionIdAvailable:
      case kSharedAvailable:
        props.u8();
        break;
      case kServerKeepAlive:
      case kReceiveMaximum:
      case kTopicAliasMaximum:
      case kTopicAlias:
        props.u16();
        break;
      case kMessageExpiry:
      case kSessionExpiry:
      case kWillDelay:
      case kMaximumPacketSize:
        props.u32();
        break;
      case kSubscriptionId:
        props.varInt();
        break;
      case kContentType:
      case kResponseTopic:
      case kCorrelationData:
      case kAssignedClientId:
      case kAuthMethod:
      case kAuthData:
      case kResponseInfo:
      case kServerReference:
      case kReasonString:
        props.field();
        break;
      case kUserProperty:
        props.field();
        props.field();
        break;
      default:
        return false;
    }
  }
  return props.ok();
}

Decoded malformed(const char* why) {
  return {DecodeStatus::kMalformed, why};
}
constexpr Decoded kOk{DecodeStatus::kOk, nullptr};

}  // namespace

void encodeConnect(Bytes& out, const ConnectOptions& o) {
  const bool v5 = o.version == Version::k5;
  std::size_t props = 0;
  if (v5) {
    if (o.receiveMaximum) props += 3;
    if (o.maximumPacketSize) props += 5;
  }
  std::size_t remaining = fieldSize("MQTT") + 1 + 1 + 2;
  if (v5) remaining += varIntSize(props) + props;
  remaining += fieldSize(o.clientId);
  if (o.will) {
    if (v5) remaining += 1;  // empty will property list
    remaining += fieldSize(o.will->topic) + fieldSize(o.will->payload);
  }
  if (!o.username.empty()) remaining += fieldSize(o.username);
  if (!o.password.empty()) remaining += fieldSize(o.password);

  uint8_t flags = 0;
  if (o.cleanStart) flags |= 0x02;
  if (o.will) flags |= 0x04 | static_cast<uint8_t>(o.will->qos << 3) | (o.will->retain ? 0x20 : 0);
  if (!o.password.empty()) flags |= 0x40;
  if (!o.username.empty()) flags |= 0x80;

  putHeader(out, static_cast<uint8_t>(PacketType::kConnect) << 4, remaining);
  putField(out, "MQTT");
  out.push_back(static_cast<uint8_t>(o.version));
  out.push_back(flags);
  putU16(out, o.keepAliveSeconds);
  if (v5) {
    putVarInt(out, props);
    if (o.receiveMaximum) {
      out.push_back(kReceiveMaximum);
      putU16(out, o.receiveMaximum);
    }
    if (o.maximumPacketSize) {
      out.push_back(kMaximumPacketSize);
      putU32(out, o.maximumPacketSize);
    }
  }
  putField(out, o.clientId);
  if (o.will) {
    if (v5) putVarInt(out, 0);
    putField(out, o.will->topic);
    putField(out, o.will->payload);
  }
  if (!o.username.empty()) putField(out, o.username);
  if (!o.password.empty()) putField(out, o.password);
}

std::size_t publishSize(Version version, const PublishOptions& p) {
  std::size_t remaining = publishRemaining(version, p);
  return 1 + varIntSize(remaining) + remaining;
}

std::size_t encodePublish(Bytes& out, Version version, const PublishOptions& p) {
  std::size_t remaining = publishRemaining(version, p);
  uint8_t first = static_cast<uint8_t>(PacketType::kPublish) << 4 |
                  static_cast<uint8_t>(p.qos << 1) | (p.retain ? 0x01 : 0);
  putHeader(out, first, remaining);
  putField(out, p.topic);
  std::size_t idOffset = 0;
  if (p.qos > 0) {
    idOffset = out.size();
    putU16(out, p.packetId);
  }
  if (version == Version::k5) {
    putVarInt(out, publishPropertiesSize(p));
    if (!p.responseTopic.empty()) {
      out.push_back(kResponseTopic);
      putField(out, p.responseTopic);
    }
    if (!p.correlationData.empty()) {
      out.push_back(kCorrelationData);
      putField(out, p.correlationData);
    }
  }
  putBytes(out, p.payload.data(), p.payload.size());
  return idOffset;
}

void setPacketId(std::span<uint8_t> bytes, std::size_t offset, uint16_t packetId) {
  bytes[offset] = static_cast<uint8_t>(packetId >> 8);
  bytes[offset + 1] = static_cast<uint8_t>(packetId);
}

void encodePuback(Bytes& out, uint16_t packetId) {
  // Success needs no reason code under MQTT 5 either: the same four bytes for both versions.
  putHeader(out, static_cast<uint8_t>(PacketType::kPuback) << 4, 2);
  putU16(out, packetId);
}

void encodeSubscribe(Bytes& out, Version version, uint16_t packetId,
                     std::span<const SubscribeFilter> filters) {
  const bool v5 = version == Version::k5;
  std::size_t remaining = 2 + (v5 ? 1 : 0);
  for (const auto& f : filters) remaining += fieldSize(f.filter) + 1;
  putHeader(out, static_cast<uint8_t>(PacketType::kSubscribe) << 4 | 0x02, remaining);
  putU16(out, packetId);
  if (v5) putVarInt(out, 0);
  for (const auto& f : filters) {
    putField(out, f.filter);
    uint8_t options = f.qos;
    if (v5) {
      if (f.noLocal) options |= 0x04;
      if (f.retainAsPublished) options |= 0x08;
      options |= static_cast<uint8_t>(f.retainHandling << 4);
    }
    out.push_back(options);
  }
}

void encodeUnsubscribe(Bytes& out, Version version, uint16_t packetId,
                       std::span<const std::string_view> filters) {
  const bool v5 = version == Version::k5;
  std::size_t remaining = 2 + (v5 ? 1 : 0);
  for (auto f : filters) remaining += fieldSize(f);
  putHeader(out, static_cast<uint8_t>(PacketType::kUnsubscribe) << 4 | 0x02, remaining);
  putU16(out, packetId);
  if (v5) putVarInt(out, 0);
  for (auto f : filters) putField(out, f);
}

void encodePingreq(Bytes& out) {
  putHeader(out, static_cast<uint8_t>(PacketType::kPingreq) << 4, 0);
}

void encodeDisconnect(Bytes& out, Version version, uint8_t reasonCode) {
  if (version == Version::k5 && reasonCode != reason::kSuccess) {
    putHeader(out, static_cast<uint8_t>(PacketType::kDisconnect) << 4, 1);
    out.push_back(reasonCode);
  } else {
    putHeader(out, static_cast<uint8_t>(PacketType::kDisconnect) << 4, 0);
  }
}

Decoded nextPacket(std::span<const uint8_t> bytes, std::size_t maxPacketSize, Packet& packet) {
  if (bytes.size() < 2) return {};
  std::size_t remaining = 0;
  std::size_t pos = 1;
  for (int i = 0;; ++i) {
    if (i == 4) return malformed("remaining length longer than four bytes");
    if (pos >= bytes.size()) return {};
    uint8_t byte = bytes[pos++];
    remaining |= static_cast<std::size_t>(byte & 0x7F) << (7 * i);
    if (!(byte & 0x80)) break;
  }
  uint8_t type = bytes[0] >> 4;
  if (type == 0) return malformed("packet type 0 is reserved");
  std::size_t size = pos + remaining;
  if (maxPacketSize != 0 && size > maxPacketSize) return malformed("packet larger than allowed");
  if (bytes.size() < size) return {};
  packet.type = static_cast<PacketType>(type);
  packet.flags = bytes[0] & 0x0F;
  packet.body = bytes.subspan(pos, remaining);
  packet.size = size;
  return kOk;
}

bool refusesVersion(const Connack& connack) {
  // 3.1.1's "unacceptable protocol version" (what a 3.1.1-only broker answers to an MQTT 5
  // CONNECT), or MQTT 5's "unsupported protocol version".
  return (connack.shapedAs311 && connack.code == 0x01) ||
         connack.code == reason::kUnsupportedProtocolVersion;
}

Decoded decodeConnack(const Packet& packet, Connack& c) {
  c = Connack{};
  Reader body(packet.body);
  uint8_t ackFlags = body.u8();
  c.code = body.u8();
  if (!body.ok() || (ackFlags & 0xFE)) return malformed("bad CONNACK");
  c.sessionPresent = ackFlags & 0x01;
  if (body.done()) {
    c.shapedAs311 = true;
    return kOk;
  }
  bool ok = readProperties(body, [&](Property id, Reader& r) {
    switch (id) {
      case kReceiveMaximum:
        c.receiveMaximum = r.u16();
        if (c.receiveMaximum == 0) r.fail();
        return true;
      case kMaximumPacketSize:
        c.maximumPacketSize = r.u32();
        if (c.maximumPacketSize == 0) r.fail();
        return true;
      case kMaximumQos:
        c.maximumQos = r.u8();
        if (c.maximumQos > 1) r.fail();
        return true;
      case kRetainAvailable: {
        uint8_t available = r.u8();
        if (available > 1) r.fail();
        c.retainAvailable = available == 1;
        return true;
      }
      case kServerKeepAlive:
        c.serverKeepAlive = r.u16();
        return true;
      case kReasonString:
        c.reasonString = r.field();
        return true;
      default:
        return false;
    }
  });
  if (!ok || !body.done()) return malformed("bad CONNACK properties");
  return kOk;
}

Decoded decodePublish(const Packet& packet, Version version, PublishIn& p) {
  p = PublishIn{};
  p.qos = (packet.flags >> 1) & 0x03;
  p.retain = packet.flags & 0x01;
  p.dup = packet.flags & 0x08;
  if (p.qos == 3) return malformed("PUBLISH with QoS 3");
  Reader body(packet.body);
  p.topic = body.field();
  if (p.qos > 0) {
    p.packetId = body.u16();
    if (body.ok() && p.packetId == 0) return malformed("PUBLISH with packet id 0");
  }
  if (!body.ok()) return malformed("truncated PUBLISH");
  if (version == Version::k5) {
    bool ok = readProperties(body, [&](Property id, Reader& r) {
      switch (id) {
        case kCorrelationData:
          p.correlationData = r.field();
          return true;
        case kResponseTopic:
          p.responseTopic = r.field();
          p.hasResponseTopic = true;
          return true;
        case kTopicAlias:
          r.u16();
          p.hasTopicAlias = true;
          return true;
        default:
          return false;
      }
    });
    if (!ok) return malformed("bad PUBLISH properties");
  }
  p.payload = body.rest();
  return kOk;
}

Decoded decodeAck(const Packet& packet, Version version, Ack& ack) {
  ack = Ack{};
  Reader body(packet.body);
  ack.packetId = body.u16();
  if (!body.ok()) return malformed("truncated acknowledgement");
  const bool v5 = version == Version::k5;
  if (packet.type == PacketType::kPuback) {
    // MQTT 5 may omit the reason code (success) and the properties.
    if (v5 && !body.done()) {
      ack.code = body.u8();
      if (!body.done() && !readProperties(body, [](Property, Reader&) { return false; })) {
        return malformed("bad PUBACK properties");
      }
    }
  } else {
    if (v5 && !readProperties(body, [](Property, Reader&) { return false; })) {
      return malformed("bad acknowledgement properties");
    }
    ack.codes = body.rest();
  }
  if (!body.ok()) return malformed("truncated acknowledgement");
  return kOk;
}

Decoded decodeDisconnect(const Packet& packet, Version version, Disconnect& d) {
  d = Disconnect{};
  if (version != Version::k5 || packet.body.empty()) return kOk;
  Reader body(packet.body);
  d.code = body.u8();
  if (!body.done()) {
    bool ok = readProperties(body, [&](Property id, Reader& r) {
      if (id != kReasonString) return false;
      d.reasonString = r.field();
      return true;
    });
    if (!ok) return malformed("bad DISCONNECT properties");
  }
  return kOk;
}

}  // namespace impgate::bus::mqtt
