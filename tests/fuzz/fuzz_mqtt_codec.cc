// Fuzz target for the MQTT codec's decoders: the bytes a broker (or whatever answers on the
// broker's port) can send to the gateway's broker link.
//
// The input is a byte stream. It is cut into packets with nextPacket, without a size limit and
// with a small one, and every packet found goes through every decoder under both protocol
// versions, whatever its type. Beyond "no crash, no sanitizer report", it checks:
//  - nextPacket needs more for every prefix of a packet it finds, and what it finds lies
//    inside the bytes it was given; a size limit only ever refuses, never changes a packet;
//  - every view a decoder returns lies inside the packet's body, and kOk/kMalformed come with
//    no error/an error;
//  - a PUBLISH that decodes re-encodes (encodePublish, exactly publishSize bytes) to a packet
//    that decodes to the same message.
// A broken property aborts, which both libFuzzer and the corpus replay report.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

#include "bus/mqtt/mqtt_codec.h"

namespace {

namespace mqtt = impgate::bus::mqtt;
using mqtt::DecodeStatus;
using mqtt::Version;

// Small enough that the fuzzer reaches the limit often.
constexpr std::size_t kSmallLimit = 64;

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_mqtt_codec: property broken: %s\n", what);
    std::abort();
  }
}

bool inside(const void* data, std::size_t size, std::span<const uint8_t> range) {
  auto* p = static_cast<const uint8_t*>(data);
  if (size == 0) return true;  // an empty view may point anywhere (or nowhere)
  return p >= range.data() && p + size <= range.data() + range.size();
}

bool inside(std::string_view view, std::span<const uint8_t> range) {
  return inside(view.data(), view.size(), range);
}

bool inside(std::span<const uint8_t> view, std::span<const uint8_t> range) {
  return inside(view.data(), view.size(), range);
}

void checkStatus(mqtt::Decoded d, const char* decoder) {
  require(d.status != DecodeStatus::kNeedMore, decoder);
  require((d.status == DecodeStatus::kMalformed) == (d.error != nullptr), decoder);
}

// Encodes `in` again and decodes the result: the same message must come back.
void checkPublishRoundTrip(const mqtt::PublishIn& in, Version version) {
  mqtt::PublishOptions out;
  out.topic = in.topic;
  out.payload = in.payload;
  out.qos = in.qos;
  out.retain = in.retain;
  out.packetId = in.packetId;
  out.correlationData = in.correlationData;
  out.responseTopic = in.responseTopic;
  mqtt::Bytes bytes;
  mqtt::encodePublish(bytes, version, out);
  require(bytes.size() == mqtt::publishSize(version, out), "publishSize differs from encoding");

  mqtt::Packet packet;
  require(mqtt::nextPacket(bytes, 0, packet).status == DecodeStatus::kOk, "re-encoded framing");
  require(packet.size == bytes.size(), "re-encoded packet size");
  mqtt::PublishIn again;
  require(mqtt::decodePublish(packet, version, again).status == DecodeStatus::kOk,
          "re-encoded PUBLISH does not decode");
  require(again.topic == in.topic && again.qos == in.qos && again.retain == in.retain &&
              again.packetId == in.packetId && !again.dup && !again.hasTopicAlias,
          "re-encoded PUBLISH header differs");
  require(
      std::string_view(reinterpret_cast<const char*>(again.payload.data()), again.payload.size()) ==
          std::string_view(reinterpret_cast<const char*>(in.payload.data()), in.payload.size()),
      "re-encoded PUBLISH payload differs");
  if (version == Version::k5) {
    require(again.correlationData == in.correlationData && again.responseTopic == in.responseTopic,
            "re-encoded PUBLISH properties differ");
  }
}

void decodeEverything(const mqtt::Packet& packet) {
  const auto body = packet.body;

  mqtt::Connack connack;
  mqtt::Decoded d = mqtt::decodeConnack(packet, connack);
  checkStatus(d, "decodeConnack status");
  if (d.status == DecodeStatus::kOk) {
    require(inside(connack.reasonString, body), "CONNACK reason string outside the packet");
    require(connack.shapedAs311 == (body.size() == 2), "CONNACK shape");
    require(connack.receiveMaximum != 0, "CONNACK receive maximum 0 accepted");
    (void)mqtt::refusesVersion(connack);
  }

  for (Version version : {Version::k311, Version::k5}) {
    mqtt::PublishIn publish;
    d = mqtt::decodePublish(packet, version, publish);
    checkStatus(d, "decodePublish status");
    if (d.status == DecodeStatus::kOk) {
      require(inside(publish.topic, body) && inside(publish.payload, body) &&
                  inside(publish.correlationData, body) && inside(publish.responseTopic, body),
              "PUBLISH view outside the packet");
      require(publish.qos <= 2, "PUBLISH QoS above 2");
      require((publish.qos == 0) == (publish.packetId == 0), "PUBLISH packet id");
      require(publish.payload.data() + publish.payload.size() == body.data() + body.size(),
              "PUBLISH payload does not end the packet");
      if (version == Version::k311) {
        require(publish.correlationData.empty() && publish.responseTopic.empty() &&
                    !publish.hasTopicAlias,
                "3.1.1 PUBLISH with properties");
      }
      checkPublishRoundTrip(publish, version);
    }

    mqtt::Ack ack;
    d = mqtt::decodeAck(packet, version, ack);
    checkStatus(d, "decodeAck status");
    if (d.status == DecodeStatus::kOk) {
      require(inside(ack.codes, body), "acknowledgement codes outside the packet");
      if (version == Version::k311 && packet.type == mqtt::PacketType::kPuback) {
        require(ack.code == 0, "3.1.1 PUBACK with a reason code");
      }
    }

    mqtt::Disconnect disconnect;
    d = mqtt::decodeDisconnect(packet, version, disconnect);
    checkStatus(d, "decodeDisconnect status");
    if (d.status == DecodeStatus::kOk) {
      require(inside(disconnect.reasonString, body), "DISCONNECT reason string outside");
      if (version == Version::k311) require(disconnect.code == 0, "3.1.1 DISCONNECT code");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> rest(data, size);
  mqtt::Packet packet;
  for (;;) {
    mqtt::Decoded d = mqtt::nextPacket(rest, 0, packet);
    require((d.status == DecodeStatus::kMalformed) == (d.error != nullptr), "nextPacket error");

    // A limit refuses what is too large and changes nothing else.
    mqtt::Packet limited;
    mqtt::Decoded l = mqtt::nextPacket(rest, kSmallLimit, limited);
    if (l.status == DecodeStatus::kOk) {
      require(d.status == DecodeStatus::kOk && limited.size == packet.size &&
                  limited.size <= kSmallLimit,
              "limited nextPacket disagrees");
    } else if (d.status == DecodeStatus::kMalformed) {
      require(l.status == DecodeStatus::kMalformed, "a limit made a bad packet acceptable");
    }

    if (d.status != DecodeStatus::kOk) break;
    require(packet.size >= 2 && packet.size <= rest.size(), "packet size outside the input");
    require(inside(packet.body, rest) &&
                packet.body.data() + packet.body.size() == rest.data() + packet.size,
            "packet body outside the packet");
    require(static_cast<uint8_t>(packet.type) != 0, "packet type 0");

    // Every prefix of a complete packet needs more bytes.
    mqtt::Packet partial;
    for (std::size_t cut = 0; cut < packet.size; ++cut) {
      require(mqtt::nextPacket(rest.first(cut), 0, partial).status == DecodeStatus::kNeedMore,
              "a prefix of a packet did not need more");
    }

    decodeEverything(packet);
    rest = rest.subspan(packet.size);
  }
  return 0;
}
