// The MQTT 3.1.1 and 5 wire format, as far as the gateway's broker link needs it: encoding the
// packets a client sends, and decoding the packets a broker sends, from bytes already in
// memory.
//
// Encoders append to a caller-owned byte vector, so many packets share one buffer and go out
// in one write; decoders return views into the caller's buffer and never allocate. Nothing
// here does I/O or keeps state between calls. Malformed input from the broker is an error
// value (DecodeStatus::kMalformed with a reason), never an exception or a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace impgate::bus::mqtt {

enum class Version : uint8_t { k311 = 4, k5 = 5 };

enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,
};

// The largest packet the wire format can describe (remaining length of four bytes).
constexpr std::size_t kMaxRemainingLength = 268'435'455;

// MQTT 5 reason codes the link acts on (3.1.1 CONNACK return codes are listed in connack()).
namespace reason {
constexpr uint8_t kSuccess = 0x00;
constexpr uint8_t kDisconnectWithWill = 0x04;
constexpr uint8_t kUnsupportedProtocolVersion = 0x84;
}  // namespace reason

using Bytes = std::vector<uint8_t>;

// ---- encoding ----

struct Will {
  std::string_view topic;
  std::string_view payload;
  uint8_t qos = 1;
  bool retain = true;
};

struct ConnectOptions {
  Version version = Version::k5;
  std::string_view clientId;
  uint16_t keepAliveSeconds = 0;
  bool cleanStart = true;
  std::string_view username;  // omitted when empty
  std::string_view password;  // omitted when empty
  const Will* will = nullptr;
  // MQTT 5 only: how many QoS 1 publishes the broker may have unacknowledged towards us, and
  // the largest packet we accept (0 = no limit announced).
  uint16_t receiveMaximum = 0;
  uint32_t maximumPacketSize = 0;
};
void encodeConnect(Bytes& out, const ConnectOptions& options);

struct PublishOptions {
  std::string_view topic;
  std::span<const uint8_t> payload;
  uint8_t qos = 1;
  bool retain = false;
  uint16_t packetId = 0;  // for QoS > 0
  // MQTT 5 properties, omitted when empty (and always under 3.1.1).
  std::string_view correlationData;
  std::string_view responseTopic;
};
// Returns the offset in `out` of the packet id's two bytes (0 for QoS 0), so that a publish
// encoded before its id is known can be given one later (setPacketId).
std::size_t encodePublish(Bytes& out, Version version, const PublishOptions& publish);
// Exact size encodePublish will append.
std::size_t publishSize(Version version, const PublishOptions& publish);
void setPacketId(std::span<uint8_t> bytes, std::size_t offset, uint16_t packetId);

void encodePuback(Bytes& out, uint16_t packetId);

struct SubscribeFilter {
  std::string_view filter;
  uint8_t qos = 1;
  // MQTT 5 subscription options (ignored under 3.1.1).
  bool noLocal = false;
  bool retainAsPublished = false;
  uint8_t retainHandling = 0;  // 0 send retained, 1 only on a new subscription, 2 never
};
void encodeSubscribe(Bytes& out, Version version, uint16_t packetId,
                     std::span<const SubscribeFilter> filters);
void encodeUnsubscribe(Bytes& out, Version version, uint16_t packetId,
                       std::span<const std::string_view> filters);
void encodePingreq(Bytes& out);
// `reasonCode` is sent under MQTT 5 only.
void encodeDisconnect(Bytes& out, Version version, uint8_t reasonCode);

// ---- decoding ----

enum class DecodeStatus : uint8_t { kOk, kNeedMore, kMalformed };

// One complete packet found at the start of a byte range: its type, the four flag bits of the
// fixed header, and its variable header + payload.
struct Packet {
  PacketType type{};
  uint8_t flags = 0;
  std::span<const uint8_t> body;
  std::size_t size = 0;  // fixed header + body: how far to advance
};

struct Decoded {
  DecodeStatus status = DecodeStatus::kNeedMore;
  const char* error = nullptr;  // set with kMalformed
};

// Finds the packet at the start of `bytes`. kNeedMore when it is not complete yet; kMalformed
// for a bad type or length, or a packet larger than `maxPacketSize` (0 = the wire maximum).
Decoded nextPacket(std::span<const uint8_t> bytes, std::size_t maxPacketSize, Packet& packet);

struct Connack {
  bool sessionPresent = false;
  // MQTT 5 reason code, or the 3.1.1 return code (0 accepted, 1 unacceptable protocol
  // version, 2 identifier rejected, 3 server unavailable, 4 bad user name or password,
  // 5 not authorized). A 3.1.1-shaped CONNACK decodes the same under either version.
  uint8_t code = 0;
  bool shapedAs311 = false;  // no properties: the broker answered in MQTT 3.1.1's form
  // MQTT 5 properties, with their defaults when absent.
  uint16_t receiveMaximum = 65535;
  uint32_t maximumPacketSize = 0;  // 0 = no limit
  uint8_t maximumQos = 2;
  bool retainAvailable = true;
  std::optional<uint16_t> serverKeepAlive;
  std::string_view reasonString;
};
// True when a broker refusing with `code` does not speak the requested protocol version.
bool refusesVersion(const Connack& connack);

struct PublishIn {
  std::string_view topic;
  std::span<const uint8_t> payload;
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  uint16_t packetId = 0;
  // MQTT 5 properties (empty when absent).
  std::string_view correlationData;
  std::string_view responseTopic;
  bool hasResponseTopic = false;  // also when empty (which a receiver may want to refuse)
  bool hasTopicAlias = false;     // never announced by us, so a protocol error
};

// PUBACK, SUBACK, UNSUBACK: the packet id, and the reason codes (one for PUBACK, one per
// filter for SUBACK/UNSUBACK; 3.1.1 UNSUBACK has none, 3.1.1 PUBACK means success).
struct Ack {
  uint16_t packetId = 0;
  std::span<const uint8_t> codes;
  uint8_t code = 0;  // PUBACK's reason code (0 success)
};

struct Disconnect {
  uint8_t code = 0;
  std::string_view reasonString;
};

Decoded decodeConnack(const Packet& packet, Connack& connack);
Decoded decodePublish(const Packet& packet, Version version, PublishIn& publish);
Decoded decodeAck(const Packet& packet, Version version, Ack& ack);
Decoded decodeDisconnect(const Packet& packet, Version version, Disconnect& disconnect);

}  // namespace impgate::bus::mqtt
