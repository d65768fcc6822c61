// The MQTT codec's encoders against the MQTT 3.1.1 (OASIS 2014) and 5.0 (OASIS 2019)
// specifications. Expected bytes are written out from the specifications' packet layouts
// (section numbers in the comments), not taken from the encoder's output.
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
