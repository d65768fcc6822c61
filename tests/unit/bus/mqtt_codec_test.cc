// The MQTT codec against the MQTT 3.1.1 (OASIS 2014) and 5.0 (OASIS 2019) specifications.
// Expected bytes are written out from the specifications' packet layouts (section numbers in
// the comments), not taken from the encoder's output; decoders are fed hand-written packets.
#include "bus/mqtt/mqtt_codec.h"

#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

namespace mqtt = impgate::bus::mqtt;
using mqtt::Bytes;
using mqtt::DecodeStatus;
using mqtt::PacketType;
using mqtt::Version;

namespace {

// A byte list written as the specification's tables show it.
Bytes b(std::initializer_list<int> values) {
  Bytes out;
  for (int v : values) out.push_back(static_cast<uint8_t>(v));
  return out;
}

// The characters of a string field's text (the length bytes are written out by the caller).
Bytes s(std::string_view text) {
  return Bytes(text.begin(), text.end());
}

Bytes operator+(Bytes a, const Bytes& rest) {
  a.insert(a.end(), rest.begin(), rest.end());
  return a;
}

// Hex text, so that a mismatch shows where the bytes differ.
std::string hex(std::span<const uint8_t> bytes) {
  std::string out;
  char byte[4];
  for (uint8_t v : bytes) {
    std::snprintf(byte, sizeof byte, "%02X ", v);
    out += byte;
  }
  return out;
}

std::span<const uint8_t> bytesOf(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

std::string_view textOf(std::span<const uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// The one packet `bytes` must hold, exactly.
mqtt::Packet onePacket(const Bytes& bytes) {
  mqtt::Packet packet;
  mqtt::Decoded d = mqtt::nextPacket(bytes, 0, packet);
  REQUIRE(d.status == DecodeStatus::kOk);
  REQUIRE(packet.size == bytes.size());
  return packet;
}

mqtt::Connack connackOf(const Bytes& bytes, DecodeStatus expected = DecodeStatus::kOk) {
  mqtt::Connack c;
  mqtt::Decoded d = mqtt::decodeConnack(onePacket(bytes), c);
  CHECK(d.status == expected);
  if (expected == DecodeStatus::kMalformed) CHECK(d.error != nullptr);
  return c;
}

}  // namespace

// ---- encoding ----

TEST_CASE("CONNECT 3.1.1 with will, user name and password (3.1.1 section 3.1)") {
  mqtt::Will will{.topic = "w/t", .payload = "bye", .qos = 1, .retain = true};
  Bytes out;
  mqtt::encodeConnect(out, {.version = Version::k311,
                            .clientId = "gw1",
                            .keepAliveSeconds = 60,
                            .cleanStart = true,
                            .username = "u",
                            .password = "pw",
                            .will = &will,
                            .receiveMaximum = 20,  // MQTT 5 only: not written
                            .maximumPacketSize = 4096});
  // Flags: user name 0x80 | password 0x40 | will retain 0x20 | will QoS 1 (0x08) | will 0x04 |
  // clean session 0x02 = 0xEE. Payload order: client id, will topic, will message, user name,
  // password.
  Bytes expected = b({0x10, 32, 0x00, 0x04}) + s("MQTT") + b({0x04, 0xEE, 0x00, 60}) +
                   b({0x00, 3}) + s("gw1") + b({0x00, 3}) + s("w/t") + b({0x00, 3}) + s("bye") +
                   b({0x00, 1}) + s("u") + b({0x00, 2}) + s("pw");
  CHECK(hex(out) == hex(expected));
}

TEST_CASE("CONNECT 3.1.1 without will or credentials, appended after other bytes") {
  Bytes out = b({0xAA});
  mqtt::ConnectOptions options;
  options.version = Version::k311;
  options.clientId = "c";
  options.cleanStart = false;
  mqtt::encodeConnect(out, options);
  Bytes expected = b({0xAA, 0x10, 13, 0x00, 0x04}) + s("MQTT") + b({0x04, 0x00, 0x00, 0x00}) +
                   b({0x00, 1}) + s("c");
  CHECK(hex(out) == hex(expected));
}

TEST_CASE("CONNECT 5 with will, credentials, receive maximum and maximum packet size (5.0 3.1)") {
  mqtt::Will will{.topic = "w/t", .payload = "bye", .qos = 0, .retain = false};
  Bytes out;
  mqtt::encodeConnect(out, {.version = Version::k5,
                            .clientId = "gw1",
                            .keepAliveSeconds = 300,
                            .cleanStart = true,
                            .username = "u",
                            .password = "pw",
                            .will = &will,
                            .receiveMaximum = 20,
                            .maximumPacketSize = 0x00100000});
  // Variable header: protocol name, level 5, flags 0x80|0x40|0x04|0x02 = 0xC6, keep alive 300,
  // properties (length 8): Receive Maximum 0x21 (two bytes), Maximum Packet Size 0x27 (four).
  // Payload: client id, will properties (length 0), will topic, will payload, user name,
  // password. Remaining length 10 + 9 + 5 + 1 + 5 + 5 + 3 + 4 = 42.
  Bytes expected = b({0x10, 42, 0x00, 0x04}) + s("MQTT") + b({0x05, 0xC6, 0x01, 0x2C}) +
                   b({8, 0x21, 0x00, 20, 0x27, 0x00, 0x10, 0x00, 0x00}) + b({0x00, 3}) + s("gw1") +
                   b({0}) + b({0x00, 3}) + s("w/t") + b({0x00, 3}) + s("bye") + b({0x00, 1}) +
                   s("u") + b({0x00, 2}) + s("pw");
  CHECK(hex(out) == hex(expected));
}

TEST_CASE("CONNECT 5 without properties has a property length of 0") {
  Bytes out;
  mqtt::ConnectOptions options;
  options.version = Version::k5;
  options.clientId = "c";
  options.keepAliveSeconds = 5;
  mqtt::encodeConnect(out, options);
  Bytes expected =
      b({0x10, 14, 0x00, 0x04}) + s("MQTT") + b({0x05, 0x02, 0x00, 5, 0}) + b({0x00, 1}) + s("c");
  CHECK(hex(out) == hex(expected));

  SECTION("only one of the two properties") {
    Bytes one;
    options.keepAliveSeconds = 0;
    options.maximumPacketSize = 300;
    mqtt::encodeConnect(one, options);
    Bytes expected1 = b({0x10, 19, 0x00, 0x04}) + s("MQTT") + b({0x05, 0x02, 0x00, 0x00}) +
                      b({5, 0x27, 0x00, 0x00, 0x01, 0x2C}) + b({0x00, 1}) + s("c");
    CHECK(hex(one) == hex(expected1));
  }
}

TEST_CASE("PUBLISH 3.1.1 at QoS 0 and QoS 1 with retain (3.1.1 section 3.3)") {
  const std::string_view payload = "hi";
  SECTION("QoS 0 has no packet identifier") {
    Bytes out;
    mqtt::PublishOptions p;
    p.topic = "a/b";
    p.payload = bytesOf(payload);
    p.qos = 0;
    std::size_t offset = mqtt::encodePublish(out, Version::k311, p);
    CHECK(offset == 0);
    CHECK(hex(out) == hex(b({0x30, 7, 0x00, 3}) + s("a/b") + s("hi")));
    CHECK(mqtt::publishSize(Version::k311, p) == out.size());
  }
  SECTION("QoS 1, retained") {
    Bytes out;
    mqtt::PublishOptions p{.topic = "a/b",
                           .payload = bytesOf(payload),
                           .qos = 1,
                           .retain = true,
                           .packetId = 0x1234,
                           .correlationData = "c1",  // MQTT 5 only: not written
                           .responseTopic = "r"};
    std::size_t offset = mqtt::encodePublish(out, Version::k311, p);
    CHECK(hex(out) == hex(b({0x33, 9, 0x00, 3}) + s("a/b") + b({0x12, 0x34}) + s("hi")));
    CHECK(offset == 7);
    CHECK(mqtt::publishSize(Version::k311, p) == out.size());
  }
}

TEST_CASE("PUBLISH 5 with and without response topic and correlation data (5.0 3.3)") {
  const std::string_view payload = "hi";
  SECTION("no properties: property length 0") {
    Bytes out;
    mqtt::PublishOptions p;
    p.topic = "a/b";
    p.payload = bytesOf(payload);
    p.qos = 0;
    CHECK(mqtt::encodePublish(out, Version::k5, p) == 0);
    CHECK(hex(out) == hex(b({0x30, 8, 0x00, 3}) + s("a/b") + b({0}) + s("hi")));
    CHECK(mqtt::publishSize(Version::k5, p) == out.size());
  }
  SECTION("QoS 1 with Response Topic (0x08) and Correlation Data (0x09)") {
    Bytes out;
    mqtt::PublishOptions p{.topic = "a/b",
                           .payload = bytesOf(payload),
                           .qos = 1,
                           .packetId = 0x1234,
                           .correlationData = "c1",
                           .responseTopic = "r"};
    std::size_t offset = mqtt::encodePublish(out, Version::k5, p);
    // The specification leaves the order of properties free; the encoder writes the response
    // topic first. Properties: 1 + 2 + 1 and 1 + 2 + 2 = 9 bytes.
    Bytes expected = b({0x32, 19, 0x00, 3}) + s("a/b") + b({0x12, 0x34}) + b({9, 0x08, 0x00, 1}) +
                     s("r") + b({0x09, 0x00, 2}) + s("c1") + s("hi");
    CHECK(hex(out) == hex(expected));
    CHECK(offset == 7);
    CHECK(mqtt::publishSize(Version::k5, p) == out.size());

    // And it reads back.
    mqtt::PublishIn in;
    REQUIRE(mqtt::decodePublish(onePacket(out), Version::k5, in).status == DecodeStatus::kOk);
    CHECK(in.topic == "a/b");
    CHECK(in.packetId == 0x1234);
    CHECK(in.qos == 1);
    CHECK(in.responseTopic == "r");
    CHECK(in.correlationData == "c1");
    CHECK(textOf(in.payload) == "hi");
  }
  SECTION("only correlation data") {
    Bytes out;
    mqtt::PublishOptions p;
    p.topic = "t";
    p.qos = 0;
    p.correlationData = "x";
    mqtt::encodePublish(out, Version::k5, p);
    CHECK(hex(out) == hex(b({0x30, 8, 0x00, 1}) + s("t") + b({4, 0x09, 0x00, 1}) + s("x")));
  }
}

// The size of a remaining-length field (3.1.1 table 2.4, 5.0 1.5.5).
std::size_t lengthFieldSize(std::size_t remaining) {
  return remaining <= 127 ? 1 : remaining <= 16383 ? 2 : remaining <= 2'097'151 ? 3 : 4;
}

TEST_CASE("publishSize equals what encodePublish appends, across length-field boundaries") {
  const std::string big(2'100'000, 'p');
  const std::string longTopic(200, 'r');
  for (Version version : {Version::k311, Version::k5}) {
    for (uint8_t qos : {0, 1}) {
      for (std::string_view responseTopic : {std::string_view{}, std::string_view{longTopic}}) {
        // The remaining length without the payload, from the packet layout: topic (2 + 3),
        // packet identifier (2, QoS > 0), under MQTT 5 the property length and the properties
        // (correlation data 1 + 2 + 2; response topic 1 + 2 + its length, when present).
        std::size_t props = 5 + (responseTopic.empty() ? 0 : 3 + responseTopic.size());
        std::size_t fixedPart =
            5 + (qos > 0 ? 2 : 0) + (version == Version::k5 ? lengthFieldSize(props) + props : 0);
        // Remaining lengths on both sides of each change of the length field's size.
        for (std::size_t remaining :
             {std::size_t{127}, std::size_t{128}, std::size_t{16383}, std::size_t{16384},
              std::size_t{2'097'151}, std::size_t{2'097'152}, fixedPart, fixedPart + 1}) {
          if (remaining < fixedPart) continue;  // 127 with the long response topic
          std::size_t payloadSize = remaining - fixedPart;
          mqtt::PublishOptions p{.topic = "a/b",
                                 .payload = bytesOf(std::string_view(big).substr(0, payloadSize)),
                                 .qos = qos,
                                 .packetId = 9,
                                 .correlationData = "cd",
                                 .responseTopic = responseTopic};
          Bytes out = b({1, 2, 3});
          mqtt::encodePublish(out, version, p);
          INFO("version " << int(version) << " qos " << int(qos) << " remaining " << remaining
                          << " response topic " << responseTopic.size());
          CHECK(out.size() - 3 == 1 + lengthFieldSize(remaining) + remaining);
          CHECK(mqtt::publishSize(version, p) == out.size() - 3);
          // The remaining length it wrote describes exactly the rest of the packet.
          mqtt::Packet packet;
          std::span<const uint8_t> written(out.data() + 3, out.size() - 3);
          REQUIRE(mqtt::nextPacket(written, 0, packet).status == DecodeStatus::kOk);
          CHECK(packet.size == written.size());
          CHECK(packet.body.size() == remaining);
          mqtt::PublishIn in;
          REQUIRE(mqtt::decodePublish(packet, version, in).status == DecodeStatus::kOk);
          CHECK(in.payload.size() == payloadSize);
          if (version == Version::k5) CHECK(in.responseTopic == responseTopic);
        }
      }
    }
  }
}

TEST_CASE("setPacketId patches the packet identifier of a publish encoded without one") {
  for (Version version : {Version::k311, Version::k5}) {
    const std::string_view payload = "hi";
    mqtt::PublishOptions p;
    p.topic = "a/b";
    p.payload = bytesOf(payload);
    p.qos = 1;
    p.packetId = 0;
    Bytes out;
    mqtt::encodePingreq(out);
    std::size_t first = mqtt::encodePublish(out, version, p);
    std::size_t second = mqtt::encodePublish(out, version, p);
    mqtt::setPacketId(out, first, 0xBEEF);
    mqtt::setPacketId(out, second, 0x0102);

    Bytes props = version == Version::k5 ? b({0}) : Bytes{};
    std::size_t remaining = version == Version::k5 ? 10 : 9;
    Bytes expected = b({0xC0, 0x00}) + b({0x32, static_cast<int>(remaining), 0x00, 3}) + s("a/b") +
                     b({0xBE, 0xEF}) + props + s("hi") +
                     b({0x32, static_cast<int>(remaining), 0x00, 3}) + s("a/b") + b({0x01, 0x02}) +
                     props + s("hi");
    CHECK(first == 9);
    CHECK(second == 9 + 2 + remaining);
    CHECK(hex(out) == hex(expected));
  }
}

TEST_CASE("PUBACK is four bytes under both versions (3.1.1 3.4, 5.0 3.4.2.1)") {
  Bytes out;
  mqtt::encodePuback(out, 0x1234);
  CHECK(hex(out) == hex(b({0x40, 0x02, 0x12, 0x34})));
}

TEST_CASE("SUBSCRIBE 3.1.1 carries only the QoS in the options byte (3.1.1 3.8)") {
  const mqtt::SubscribeFilter filters[] = {
      {.filter = "a/+", .qos = 1, .noLocal = true, .retainAsPublished = true, .retainHandling = 2},
      {.filter = "b/#", .qos = 0}};
  Bytes out;
  mqtt::encodeSubscribe(out, Version::k311, 10, filters);
  // Fixed header flags are 0b0010 (3.1.1 3.8.1).
  Bytes expected =
      b({0x82, 14, 0x00, 10, 0x00, 3}) + s("a/+") + b({0x01, 0x00, 3}) + s("b/#") + b({0x00});
  CHECK(hex(out) == hex(expected));
}

TEST_CASE("SUBSCRIBE 5 subscription options: no local, retain as published, retain handling") {
  // 5.0 3.8.3.1: bits 0-1 maximum QoS, bit 2 No Local, bit 3 Retain As Published, bits 4-5
  // Retain Handling.
  const mqtt::SubscribeFilter filters[] = {
      {.filter = "a/+", .qos = 1, .noLocal = true, .retainAsPublished = true, .retainHandling = 2},
      {.filter = "b", .qos = 0, .retainHandling = 1},
      {.filter = "c", .qos = 1, .noLocal = true},
      {.filter = "d", .qos = 0, .retainAsPublished = true}};
  Bytes out;
  mqtt::encodeSubscribe(out, Version::k5, 0x0A0B, filters);
  Bytes expected = b({0x82, 21, 0x0A, 0x0B, 0}) + b({0x00, 3}) + s("a/+") + b({0x2D}) +
                   b({0x00, 1}) + s("b") + b({0x10}) + b({0x00, 1}) + s("c") + b({0x05}) +
                   b({0x00, 1}) + s("d") + b({0x08});
  CHECK(hex(out) == hex(expected));
}

TEST_CASE("UNSUBSCRIBE under both versions (3.1.1 3.10, 5.0 3.10)") {
  const std::string_view filters[] = {"a/+", "b"};
  Bytes v311;
  mqtt::encodeUnsubscribe(v311, Version::k311, 11, filters);
  CHECK(hex(v311) ==
        hex(b({0xA2, 10, 0x00, 11}) + b({0x00, 3}) + s("a/+") + b({0x00, 1}) + s("b")));
  Bytes v5;
  mqtt::encodeUnsubscribe(v5, Version::k5, 11, filters);
  CHECK(hex(v5) ==
        hex(b({0xA2, 11, 0x00, 11, 0}) + b({0x00, 3}) + s("a/+") + b({0x00, 1}) + s("b")));
}

TEST_CASE("PINGREQ and DISCONNECT (3.1.1 3.12/3.14, 5.0 3.12/3.14)") {
  Bytes ping;
  mqtt::encodePingreq(ping);
  CHECK(hex(ping) == hex(b({0xC0, 0x00})));

  Bytes out;
  mqtt::encodeDisconnect(out, Version::k311, mqtt::reason::kDisconnectWithWill);
  CHECK(hex(out) == hex(b({0xE0, 0x00})));  // 3.1.1 has no reason code
  out.clear();
  mqtt::encodeDisconnect(out, Version::k5, mqtt::reason::kSuccess);
  CHECK(hex(out) == hex(b({0xE0, 0x00})));  // 5.0 3.14.2.1: may be omitted for 0x00
  out.clear();
  // 5.0 3.14.2.2: with a remaining length of 1 the property length is omitted.
  mqtt::encodeDisconnect(out, Version::k5, mqtt::reason::kDisconnectWithWill);
  CHECK(hex(out) == hex(b({0xE0, 0x01, 0x04})));
}

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
