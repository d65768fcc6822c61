// The MQTT codec's decoders against the MQTT 3.1.1 (OASIS 2014) and 5.0 (OASIS 2019)
// specifications, fed hand-written packets (section numbers in the comments).
#include "bus/mqtt/mqtt_codec.h"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "tests/unit/bus/mqtt_spec_bytes.h"

namespace mqtt = impgate::bus::mqtt;
using mqtt::Bytes;
using mqtt::DecodeStatus;
using mqtt::PacketType;
using mqtt::Version;
using namespace impgate::bus::mqtt::spec;

// ---- nextPacket ----

TEST_CASE("nextPacket needs more until a packet is complete, at every split point") {
  // Remaining lengths of one, two and three bytes.
  std::vector<Bytes> packets = {b({0xD0, 0x00}), b({0x40, 0x02, 0x00, 0x07}),
                                b({0x30, 130, 0x01}) + Bytes(130, 'x'),
                                b({0x30, 0x80, 0x80, 0x01}) + Bytes(16384, 'y')};
  for (const Bytes& packet : packets) {
    INFO("packet of " << packet.size() << " bytes");
    mqtt::Packet found;
    for (std::size_t cut = 0; cut < packet.size(); ++cut) {
      mqtt::Decoded d = mqtt::nextPacket(std::span<const uint8_t>(packet.data(), cut), 0, found);
      if (d.status != DecodeStatus::kNeedMore) {
        FAIL_CHECK("prefix of " << cut << " bytes did not need more");
        break;
      }
    }
    REQUIRE(mqtt::nextPacket(packet, 0, found).status == DecodeStatus::kOk);
    CHECK(found.size == packet.size());
    CHECK(found.type == static_cast<PacketType>(packet[0] >> 4));
    CHECK(found.body.data() + found.body.size() == packet.data() + packet.size());
  }
}

TEST_CASE("nextPacket finds several packets in one buffer") {
  Bytes buffer = b({0x20, 0x02, 0x00, 0x00}) + b({0x3B, 0x06, 0x00, 0x01}) + s("t") +
                 b({0x00, 0x05}) + s("p") + b({0xD0, 0x00}) + b({0xB0, 0x02, 0x00, 0x01}) +
                 b({0x40, 0x02});  // incomplete PUBACK at the end
  std::vector<std::pair<PacketType, uint8_t>> seen;
  std::vector<std::size_t> bodySizes;
  std::span<const uint8_t> rest(buffer);
  mqtt::Packet packet;
  mqtt::Decoded d;
  while ((d = mqtt::nextPacket(rest, 0, packet)).status == DecodeStatus::kOk) {
    seen.emplace_back(packet.type, packet.flags);
    bodySizes.push_back(packet.body.size());
    rest = rest.subspan(packet.size);
  }
  CHECK(d.status == DecodeStatus::kNeedMore);
  CHECK(rest.size() == 2);
  REQUIRE(seen.size() == 4);
  CHECK(seen[0] == std::pair{PacketType::kConnack, uint8_t{0}});
  CHECK(seen[1] == std::pair{PacketType::kPublish, uint8_t{0x0B}});
  CHECK(seen[2] == std::pair{PacketType::kPingresp, uint8_t{0}});
  CHECK(seen[3] == std::pair{PacketType::kUnsuback, uint8_t{0}});
  CHECK(bodySizes == std::vector<std::size_t>{2, 6, 0, 2});
}

TEST_CASE("nextPacket remaining-length encodings (3.1.1 2.2.3, 5.0 1.5.5)") {
  struct Case {
    Bytes header;
    std::size_t remaining;
  };
  const Case cases[] = {
      {b({0x30, 0x00}), 0},
      {b({0x30, 0x7F}), 127},
      {b({0x30, 0x80, 0x01}), 128},
      {b({0x30, 0xFF, 0x7F}), 16383},
      {b({0x30, 0x80, 0x80, 0x01}), 16384},
      {b({0x30, 0xFF, 0xFF, 0x7F}), 2'097'151},
      {b({0x30, 0x80, 0x80, 0x80, 0x01}), 2'097'152},
  };
  for (const Case& c : cases) {
    INFO("remaining length " << c.remaining);
    Bytes packet = c.header + Bytes(c.remaining, 0x5A);
    mqtt::Packet found;
    REQUIRE(mqtt::nextPacket(packet, 0, found).status == DecodeStatus::kOk);
    CHECK(found.body.size() == c.remaining);
    CHECK(found.size == c.header.size() + c.remaining);
    // One byte short is not a packet yet.
    packet.pop_back();
    if (c.remaining > 0) {
      CHECK(mqtt::nextPacket(packet, 0, found).status == DecodeStatus::kNeedMore);
    }
  }

  SECTION("the largest remaining length, 268 435 455, waits for its body") {
    mqtt::Packet found;
    Bytes header = b({0x30, 0xFF, 0xFF, 0xFF, 0x7F});
    CHECK(mqtt::nextPacket(header, 0, found).status == DecodeStatus::kNeedMore);
  }
  SECTION("a fifth length byte is malformed, with or without the byte after it") {
    mqtt::Packet found;
    mqtt::Decoded d = mqtt::nextPacket(b({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}), 0, found);
    CHECK(d.status == DecodeStatus::kMalformed);
    CHECK(d.error != nullptr);
    CHECK(mqtt::nextPacket(b({0x30, 0x80, 0x80, 0x80, 0x80}), 0, found).status ==
          DecodeStatus::kMalformed);
    // Three continuation bytes are still an incomplete length.
    CHECK(mqtt::nextPacket(b({0x30, 0x80, 0x80, 0x80}), 0, found).status ==
          DecodeStatus::kNeedMore);
  }
  SECTION("maximum packet size counts the whole packet, and refuses before the body arrives") {
    mqtt::Packet found;
    Bytes exact = b({0x30, 0x08}) + Bytes(8, 0);  // 10 bytes in all
    CHECK(mqtt::nextPacket(exact, 10, found).status == DecodeStatus::kOk);
    mqtt::Decoded d = mqtt::nextPacket(exact, 9, found);
    CHECK(d.status == DecodeStatus::kMalformed);
    CHECK(d.error != nullptr);
    CHECK(mqtt::nextPacket(b({0x30, 0x08}), 9, found).status == DecodeStatus::kMalformed);
    CHECK(mqtt::nextPacket(b({0x30, 0xFF, 0xFF, 0xFF, 0x7F}), 1 << 20, found).status ==
          DecodeStatus::kMalformed);
  }
}

TEST_CASE("nextPacket refuses the reserved packet type 0") {
  mqtt::Packet found;
  mqtt::Decoded d = mqtt::nextPacket(b({0x00, 0x00}), 0, found);
  CHECK(d.status == DecodeStatus::kMalformed);
  CHECK(d.error != nullptr);
  CHECK(mqtt::nextPacket(b({0x0F, 0x01, 0x00}), 0, found).status == DecodeStatus::kMalformed);
  // Type 15 (AUTH) is a packet type under MQTT 5.
  CHECK(mqtt::nextPacket(b({0xF0, 0x00}), 0, found).status == DecodeStatus::kOk);
  CHECK(found.type == PacketType::kAuth);
}

// ---- CONNACK ----

TEST_CASE("a CONNACK in 3.1.1 form (3.1.1 3.2) decodes alike whichever version was asked") {
  mqtt::Connack accepted = connackOf(b({0x20, 0x02, 0x01, 0x00}));
  CHECK(accepted.shapedAs311);
  CHECK(accepted.sessionPresent);
  CHECK(accepted.code == 0);
  CHECK_FALSE(mqtt::refusesVersion(accepted));
  // Properties keep their MQTT 5 defaults.
  CHECK(accepted.receiveMaximum == 65535);
  CHECK(accepted.maximumPacketSize == 0);
  CHECK(accepted.maximumQos == 2);
  CHECK(accepted.retainAvailable);
  CHECK_FALSE(accepted.serverKeepAlive);

  // Return code 1, unacceptable protocol version: what a 3.1.1-only broker answers to an MQTT
  // 5 CONNECT.
  mqtt::Connack refused = connackOf(b({0x20, 0x02, 0x00, 0x01}));
  CHECK(refused.shapedAs311);
  CHECK_FALSE(refused.sessionPresent);
  CHECK(refused.code == 1);
  CHECK(mqtt::refusesVersion(refused));

  for (int code = 2; code <= 5; ++code) {
    mqtt::Connack other = connackOf(b({0x20, 0x02, 0x00, code}));
    CHECK(other.code == code);
    CHECK_FALSE(mqtt::refusesVersion(other));
  }
  // Reserved acknowledge flag bits are malformed (3.1.1 3.2.2.1, 5.0 3.2.2.1).
  connackOf(b({0x20, 0x02, 0x02, 0x00}), DecodeStatus::kMalformed);
  connackOf(b({0x20, 0x02, 0x80, 0x00}), DecodeStatus::kMalformed);
  // Too short.
  connackOf(b({0x20, 0x01, 0x00}), DecodeStatus::kMalformed);
  connackOf(b({0x20, 0x00}), DecodeStatus::kMalformed);
}

TEST_CASE("a v5 CONNACK's properties (5.0 3.2.2.3)") {
  SECTION("empty property list: defaults, not 3.1.1-shaped") {
    mqtt::Connack c = connackOf(b({0x20, 0x03, 0x00, 0x00, 0x00}));
    CHECK_FALSE(c.shapedAs311);
    CHECK(c.code == 0);
    CHECK(c.receiveMaximum == 65535);
    CHECK(c.maximumPacketSize == 0);
    CHECK(c.maximumQos == 2);
    CHECK(c.retainAvailable);
    CHECK(c.reasonString.empty());
  }
  SECTION("every property the link reads, and some it skips") {
    Bytes props = b({0x21, 0x00, 10}) +                                  // Receive Maximum 10
                  b({0x27, 0x00, 0x00, 0x10, 0x00}) +                    // Maximum Packet Size 4096
                  b({0x24, 0x01}) +                                      // Maximum QoS 1
                  b({0x25, 0x00}) +                                      // Retain Available 0
                  b({0x13, 0x00, 30}) +                                  // Server Keep Alive 30
                  b({0x1F, 0x00, 2}) + s("ok") +                         // Reason String
                  b({0x26, 0x00, 1}) + s("k") + b({0x00, 1}) + s("v") +  // User Property
                  b({0x12, 0x00, 2}) + s("id") +            // Assigned Client Identifier
                  b({0x22, 0x00, 5}) +                      // Topic Alias Maximum
                  b({0x11, 0x00, 0x00, 0x00, 0x3C}) +       // Session Expiry Interval
                  b({0x28, 0x01, 0x29, 0x00, 0x2A, 0x01});  // Wildcard/Sub. Id/Shared
    REQUIRE(props.size() == 46);
    Bytes packet = b({0x20, 49, 0x01, 0x00, 46}) + props;
    mqtt::Connack c = connackOf(packet);
    CHECK_FALSE(c.shapedAs311);
    CHECK(c.sessionPresent);
    CHECK(c.code == 0);
    CHECK(c.receiveMaximum == 10);
    CHECK(c.maximumPacketSize == 4096);
    CHECK(c.maximumQos == 1);
    CHECK_FALSE(c.retainAvailable);
    CHECK(c.serverKeepAlive == std::optional<uint16_t>{30});
    CHECK(c.reasonString == "ok");
  }
  SECTION("unsupported protocol version 0x84 with a reason string") {
    Bytes packet = b({0x20, 0x09, 0x00, 0x84, 0x06, 0x1F, 0x00, 0x03}) + s("old");
    mqtt::Connack c = connackOf(packet);  // the reason string is a view into `packet`
    CHECK(c.code == 0x84);
    CHECK(c.reasonString == "old");
    CHECK(mqtt::refusesVersion(c));
  }
  SECTION("code 1 in v5 form is not the 3.1.1 refusal") {
    mqtt::Connack c = connackOf(b({0x20, 0x03, 0x00, 0x01, 0x00}));
    CHECK_FALSE(mqtt::refusesVersion(c));
  }
  SECTION("receive maximum 0 is malformed (5.0 3.2.2.3.3)") {
    connackOf(b({0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x00}), DecodeStatus::kMalformed);
  }
  SECTION("values the specification calls a protocol error are malformed") {
    // 5.0 3.2.2.3.6: Maximum Packet Size 0 (which would otherwise read as "no limit").
    connackOf(b({0x20, 0x08, 0x00, 0x00, 0x05, 0x27, 0x00, 0x00, 0x00, 0x00}),
              DecodeStatus::kMalformed);
    // 5.0 3.2.2.3.4: Maximum QoS other than 0 or 1.
    connackOf(b({0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02}), DecodeStatus::kMalformed);
    // 5.0 3.2.2.3.5: Retain Available other than 0 or 1.
    connackOf(b({0x20, 0x05, 0x00, 0x00, 0x02, 0x25, 0x02}), DecodeStatus::kMalformed);
    // The edges that are allowed.
    CHECK(connackOf(b({0x20, 0x08, 0x00, 0x00, 0x05, 0x27, 0x00, 0x00, 0x00, 0x01}))
              .maximumPacketSize == 1);
    CHECK(connackOf(b({0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x00})).maximumQos == 0);
    CHECK(connackOf(b({0x20, 0x05, 0x00, 0x00, 0x02, 0x25, 0x01})).retainAvailable);
  }
  SECTION("an unknown property identifier is malformed") {
    connackOf(b({0x20, 0x05, 0x00, 0x00, 0x02, 0x7F, 0x00}), DecodeStatus::kMalformed);
    connackOf(b({0x20, 0x05, 0x00, 0x00, 0x02, 0x00, 0x00}), DecodeStatus::kMalformed);
    connackOf(b({0x20, 0x05, 0x00, 0x00, 0x02, 0x14, 0x00}), DecodeStatus::kMalformed);
  }
  SECTION("truncated properties are malformed") {
    // Property length beyond the packet.
    connackOf(b({0x20, 0x05, 0x00, 0x00, 0x03, 0x21, 0x00}), DecodeStatus::kMalformed);
    // A four-byte value cut at two.
    connackOf(b({0x20, 0x05, 0x00, 0x00, 0x02, 0x27, 0x00}), DecodeStatus::kMalformed);
    // A string longer than its property list.
    connackOf(b({0x20, 0x07, 0x00, 0x00, 0x04, 0x1F, 0x00, 0x05, 'a'}), DecodeStatus::kMalformed);
    // A user property missing its value.
    connackOf(b({0x20, 0x08, 0x00, 0x00, 0x05, 0x26, 0x00, 0x01, 'k', 0x00}),
              DecodeStatus::kMalformed);
    // Property length itself cut off (a continuation byte, then nothing).
    connackOf(b({0x20, 0x03, 0x00, 0x00, 0x80}), DecodeStatus::kMalformed);
  }
  SECTION("bytes after the property list are malformed") {
    connackOf(b({0x20, 0x05, 0x00, 0x00, 0x00, 0xFF, 0xFF}), DecodeStatus::kMalformed);
  }
}

TEST_CASE("a Connack decoded again (the next connection) keeps nothing of the previous one") {
  // As decodePublish, decodeAck and decodeDisconnect do: absent properties have their
  // defaults whatever the struct held before.
  const Bytes limited = b({0x20, 21, 0x01, 0x00, 18}) + b({0x21, 0x00, 10}) +
                        b({0x27, 0x00, 0x00, 0x10, 0x00}) + b({0x24, 0x00, 0x25, 0x00}) +
                        b({0x13, 0x00, 30}) + b({0x1F, 0x00, 0});
  const Bytes plain = b({0x20, 0x03, 0x00, 0x00, 0x00});
  const Bytes old311 = b({0x20, 0x02, 0x00, 0x00});

  mqtt::Connack c;
  REQUIRE(mqtt::decodeConnack(onePacket(limited), c).status == DecodeStatus::kOk);
  REQUIRE(c.receiveMaximum == 10);
  REQUIRE(mqtt::decodeConnack(onePacket(plain), c).status == DecodeStatus::kOk);
  CHECK_FALSE(c.sessionPresent);
  CHECK(c.receiveMaximum == 65535);
  CHECK(c.maximumPacketSize == 0);
  CHECK(c.maximumQos == 2);
  CHECK(c.retainAvailable);
  CHECK_FALSE(c.serverKeepAlive);

  // A 3.1.1-shaped answer, then a v5 one: the second is not 3.1.1-shaped.
  REQUIRE(mqtt::decodeConnack(onePacket(old311), c).status == DecodeStatus::kOk);
  REQUIRE(c.shapedAs311);
  REQUIRE(mqtt::decodeConnack(onePacket(plain), c).status == DecodeStatus::kOk);
  CHECK_FALSE(c.shapedAs311);
}

// ---- PUBLISH ----

TEST_CASE("an incoming v5 PUBLISH with properties, including a topic alias") {
  Bytes props = b({0x23, 0x00, 0x03}) +              // Topic Alias 3
                b({0x08, 0x00, 1}) + s("r") +        // Response Topic
                b({0x09, 0x00, 2}) + s("cd") +       // Correlation Data
                b({0x01, 0x01}) +                    // Payload Format Indicator
                b({0x02, 0x00, 0x00, 0x00, 0x3C}) +  // Message Expiry Interval
                b({0x0B, 0x85, 0x01}) +              // Subscription Identifier 133
                b({0x26, 0x00, 1}) + s("k") + b({0x00, 1}) + s("v") +  // User Property
                b({0x03, 0x00, 4}) + s("text");                        // Content Type
  REQUIRE(props.size() == 36);
  // DUP 0x08 | QoS 1 (0x02) | RETAIN 0x01.
  Bytes packet = b({0x3B, 47, 0x00, 3}) + s("a/b") + b({0x00, 0x07, 36}) + props + s("xyz");
  mqtt::PublishIn p;
  REQUIRE(mqtt::decodePublish(onePacket(packet), Version::k5, p).status == DecodeStatus::kOk);
  CHECK(p.topic == "a/b");
  CHECK(p.qos == 1);
  CHECK(p.retain);
  CHECK(p.dup);
  CHECK(p.packetId == 7);
  CHECK(p.responseTopic == "r");
  CHECK(p.correlationData == "cd");
  CHECK(p.hasTopicAlias);
  CHECK(textOf(p.payload) == "xyz");

  SECTION("the same struct decoding a plain publish forgets the earlier fields") {
    Bytes plain = b({0x30, 0x07, 0x00, 0x01}) + s("t") + b({0x00}) + s("pay");
    REQUIRE(mqtt::decodePublish(onePacket(plain), Version::k5, p).status == DecodeStatus::kOk);
    CHECK(p.topic == "t");
    CHECK(p.qos == 0);
    CHECK_FALSE(p.retain);
    CHECK_FALSE(p.dup);
    CHECK(p.packetId == 0);
    CHECK(p.responseTopic.empty());
    CHECK(p.correlationData.empty());
    CHECK_FALSE(p.hasTopicAlias);
    CHECK(textOf(p.payload) == "pay");
  }
}

TEST_CASE("an incoming 3.1.1 PUBLISH has no property list") {
  mqtt::PublishIn p;
  Bytes qos0 = b({0x30, 0x07, 0x00, 0x03}) + s("a/b") + s("hi");
  REQUIRE(mqtt::decodePublish(onePacket(qos0), Version::k311, p).status == DecodeStatus::kOk);
  CHECK(p.topic == "a/b");
  CHECK(p.qos == 0);
  CHECK(p.packetId == 0);
  CHECK(textOf(p.payload) == "hi");

  Bytes qos2 = b({0x34, 0x06, 0x00, 0x01}) + s("t") + b({0xAB, 0xCD}) + s("x");
  REQUIRE(mqtt::decodePublish(onePacket(qos2), Version::k311, p).status == DecodeStatus::kOk);
  CHECK(p.qos == 2);
  CHECK(p.packetId == 0xABCD);
  CHECK(textOf(p.payload) == "x");

  // The same topic + payload bytes under v5 lack the property length... and an empty payload
  // under 3.1.1 is fine.
  Bytes noPayload = b({0x30, 0x05, 0x00, 0x03}) + s("a/b");
  CHECK(mqtt::decodePublish(onePacket(noPayload), Version::k311, p).status == DecodeStatus::kOk);
  CHECK(p.payload.empty());
  CHECK(mqtt::decodePublish(onePacket(noPayload), Version::k5, p).status ==
        DecodeStatus::kMalformed);
}

TEST_CASE("malformed incoming PUBLISH packets") {
  for (Version version : {Version::k311, Version::k5}) {
    INFO("version " << int(version));
    mqtt::PublishIn p;
    auto status = [&](const Bytes& packet) {
      mqtt::Decoded d = mqtt::decodePublish(onePacket(packet), version, p);
      if (d.status == DecodeStatus::kMalformed) CHECK(d.error != nullptr);
      return d.status;
    };
    // QoS 3 (both QoS bits set, 3.1.1 3.3.1.2, 5.0 3.3.1.2).
    CHECK(status(b({0x36, 0x08, 0x00, 0x01}) + s("t") + b({0x00, 0x01, 0x00}) + s("xx")) ==
          DecodeStatus::kMalformed);
    // Packet identifier 0 at QoS 1 and 2 (3.1.1 2.3.1, 5.0 2.2.1).
    CHECK(status(b({0x32, 0x06, 0x00, 0x01}) + s("t") + b({0x00, 0x00, 0x00})) ==
          DecodeStatus::kMalformed);
    CHECK(status(b({0x34, 0x06, 0x00, 0x01}) + s("t") + b({0x00, 0x00, 0x00})) ==
          DecodeStatus::kMalformed);
    // Topic length beyond the packet.
    CHECK(status(b({0x30, 0x03, 0x00, 0x05}) + s("a")) == DecodeStatus::kMalformed);
    // No topic length at all.
    CHECK(status(b({0x30, 0x01, 0x00})) == DecodeStatus::kMalformed);
    CHECK(status(b({0x30, 0x00})) == DecodeStatus::kMalformed);
    // QoS 1 without a packet identifier, or half of one.
    CHECK(status(b({0x32, 0x03, 0x00, 0x01}) + s("t")) == DecodeStatus::kMalformed);
    CHECK(status(b({0x32, 0x04, 0x00, 0x01}) + s("t") + b({0x01})) == DecodeStatus::kMalformed);
  }
  mqtt::PublishIn p;
  // v5: property list longer than the packet; a property cut off; an unknown property.
  CHECK(mqtt::decodePublish(onePacket(b({0x30, 0x05, 0x00, 0x01}) + s("t") + b({0x05, 0x08})),
                            Version::k5, p)
            .status == DecodeStatus::kMalformed);
  CHECK(mqtt::decodePublish(
            onePacket(b({0x30, 0x07, 0x00, 0x01}) + s("t") + b({0x03, 0x08, 0x00, 0x05})),
            Version::k5, p)
            .status == DecodeStatus::kMalformed);
  CHECK(mqtt::decodePublish(onePacket(b({0x30, 0x06, 0x00, 0x01}) + s("t") + b({0x02, 0x7E, 0})),
                            Version::k5, p)
            .status == DecodeStatus::kMalformed);
}

// ---- PUBACK, SUBACK, UNSUBACK ----

TEST_CASE("PUBACK under 3.1.1 and 5, with and without reason code and properties") {
  mqtt::Ack ack;
  auto decode = [&](const Bytes& packet, Version version) {
    return mqtt::decodeAck(onePacket(packet), version, ack).status;
  };
  REQUIRE(decode(b({0x40, 0x02, 0x00, 0x07}), Version::k311) == DecodeStatus::kOk);
  CHECK(ack.packetId == 7);
  CHECK(ack.code == 0);

  // 5.0 3.4.2.1: remaining length 2 means success, without properties.
  REQUIRE(decode(b({0x40, 0x02, 0x12, 0x34}), Version::k5) == DecodeStatus::kOk);
  CHECK(ack.packetId == 0x1234);
  CHECK(ack.code == 0);
  // A reason code without properties (5.0 3.4.2.2: property length omitted when < 4).
  REQUIRE(decode(b({0x40, 0x03, 0x00, 0x07, 0x10}), Version::k5) == DecodeStatus::kOk);
  CHECK(ack.packetId == 7);
  CHECK(ack.code == 0x10);
  // A reason code and an empty property list.
  REQUIRE(decode(b({0x40, 0x04, 0x00, 0x07, 0x80, 0x00}), Version::k5) == DecodeStatus::kOk);
  CHECK(ack.code == 0x80);
  // A reason code and a reason string (skipped) and a user property.
  Bytes props = b({0x1F, 0x00, 3}) + s("bad") + b({0x26, 0x00, 1}) + s("k") + b({0x00, 0});
  REQUIRE(decode(b({0x40, 16, 0x00, 0x07, 0x87, 12}) + props, Version::k5) == DecodeStatus::kOk);
  CHECK(ack.packetId == 7);
  CHECK(ack.code == 0x87);

  SECTION("truncated") {
    CHECK(decode(b({0x40, 0x01, 0x00}), Version::k311) == DecodeStatus::kMalformed);
    CHECK(decode(b({0x40, 0x01, 0x00}), Version::k5) == DecodeStatus::kMalformed);
    CHECK(decode(b({0x40, 0x00}), Version::k5) == DecodeStatus::kMalformed);
    // Property list longer than the packet; a string cut off inside it; unknown property.
    CHECK(decode(b({0x40, 0x05, 0x00, 0x07, 0x80, 0x03, 0x1F}), Version::k5) ==
          DecodeStatus::kMalformed);
    CHECK(decode(b({0x40, 0x07, 0x00, 0x07, 0x80, 0x03, 0x1F, 0x00, 0x09}), Version::k5) ==
          DecodeStatus::kMalformed);
    CHECK(decode(b({0x40, 0x06, 0x00, 0x07, 0x80, 0x02, 0x7F, 0x00}), Version::k5) ==
          DecodeStatus::kMalformed);
  }
}

TEST_CASE("SUBACK return codes (3.1.1 3.9, 5.0 3.9)") {
  mqtt::Ack ack;
  // The codes are a view into the packet's bytes, so these stay alive while they are read.
  const Bytes threeCodes = b({0x90, 0x05, 0x00, 0x0A, 0x00, 0x01, 0x80});
  REQUIRE(mqtt::decodeAck(onePacket(threeCodes), Version::k311, ack).status == DecodeStatus::kOk);
  CHECK(ack.packetId == 10);
  CHECK(hex(ack.codes) == hex(b({0x00, 0x01, 0x80})));

  REQUIRE(mqtt::decodeAck(onePacket(threeCodes), Version::k5, ack).status == DecodeStatus::kOk);
  CHECK(hex(ack.codes) == hex(b({0x01, 0x80})));  // first byte was the property length

  Bytes withProps = b({0x90, 10, 0x00, 0x0A, 5, 0x1F, 0x00, 2}) + s("no") + b({0x02, 0x87});
  REQUIRE(mqtt::decodeAck(onePacket(withProps), Version::k5, ack).status == DecodeStatus::kOk);
  CHECK(ack.packetId == 10);
  CHECK(hex(ack.codes) == hex(b({0x02, 0x87})));

  CHECK(mqtt::decodeAck(onePacket(b({0x90, 0x03, 0x00, 0x0A, 0x04})), Version::k5, ack).status ==
        DecodeStatus::kMalformed);
  CHECK(mqtt::decodeAck(onePacket(b({0x90, 0x02, 0x00, 0x0A})), Version::k5, ack).status ==
        DecodeStatus::kMalformed);  // no property length
  CHECK(mqtt::decodeAck(onePacket(b({0x90, 0x01, 0x00})), Version::k311, ack).status ==
        DecodeStatus::kMalformed);
}

TEST_CASE("UNSUBACK: no codes under 3.1.1, one per filter under 5 (3.1.1 3.11, 5.0 3.11)") {
  mqtt::Ack ack;
  REQUIRE(mqtt::decodeAck(onePacket(b({0xB0, 0x02, 0x00, 0x0B})), Version::k311, ack).status ==
          DecodeStatus::kOk);
  CHECK(ack.packetId == 11);
  CHECK(ack.codes.empty());

  const Bytes twoCodes = b({0xB0, 0x05, 0x00, 0x0B, 0x00, 0x00, 0x11});
  REQUIRE(mqtt::decodeAck(onePacket(twoCodes), Version::k5, ack).status == DecodeStatus::kOk);
  CHECK(ack.packetId == 11);
  CHECK(hex(ack.codes) == hex(b({0x00, 0x11})));

  CHECK(mqtt::decodeAck(onePacket(b({0xB0, 0x02, 0x00, 0x0B})), Version::k5, ack).status ==
        DecodeStatus::kMalformed);  // no property length
}

// ---- DISCONNECT ----

TEST_CASE("DISCONNECT from a v5 broker, with a reason string (5.0 3.14)") {
  mqtt::Disconnect d;
  auto decode = [&](const Bytes& packet, Version version) {
    return mqtt::decodeDisconnect(onePacket(packet), version, d).status;
  };
  Bytes props = b({0x1F, 0x00, 4}) + s("busy") + b({0x26, 0x00, 1}) + s("k") + b({0x00, 0});
  const Bytes withReason = b({0xE0, 15, 0x8B, 13}) + props;  // reasonString points into it
  REQUIRE(decode(withReason, Version::k5) == DecodeStatus::kOk);
  CHECK(d.code == 0x8B);
  CHECK(d.reasonString == "busy");

  REQUIRE(decode(b({0xE0, 0x00}), Version::k5) == DecodeStatus::kOk);
  CHECK(d.code == 0);  // remaining length 0: normal disconnection
  CHECK(d.reasonString.empty());

  REQUIRE(decode(b({0xE0, 0x01, 0x8E}), Version::k5) == DecodeStatus::kOk);
  CHECK(d.code == 0x8E);

  REQUIRE(decode(b({0xE0, 0x02, 0x8E, 0x00}), Version::k5) == DecodeStatus::kOk);
  CHECK(d.code == 0x8E);

  REQUIRE(decode(b({0xE0, 0x00}), Version::k311) == DecodeStatus::kOk);
  CHECK(d.code == 0);

  CHECK(decode(b({0xE0, 0x03, 0x8B, 0x05, 0x1F}), Version::k5) == DecodeStatus::kMalformed);
  CHECK(decode(b({0xE0, 0x05, 0x8B, 0x03, 0x1F, 0x00, 0x04}), Version::k5) ==
        DecodeStatus::kMalformed);
  CHECK(decode(b({0xE0, 0x04, 0x8B, 0x02, 0x50, 0x00}), Version::k5) == DecodeStatus::kMalformed);
}
