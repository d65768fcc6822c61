// ScriptedBroker: an MQTT "broker" for unit tests of bus::mqtt::BrokerLink. It listens on
// 127.0.0.1 (a free port), decodes what the client sends with the codec, records every packet,
// and answers only as the test scripts it: CONNACK in MQTT 5 or 3.1.1 shape with chosen
// properties, PUBACKs sent at once or withheld and released on demand, PINGRESP or silence,
// PUBLISH to the client, DISCONNECT, raw bytes, a closed connection.
//
// It runs on the same EventLoop as the link under test, so a test is one thread: it drives the
// loop with runUntil() and inspects both sides between passes. Owned by the test; the loop
// must outlive it. Loop thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bus/mqtt/mqtt_codec.h"
#include "gateway/base/net/event_loop.h"

namespace impgate::testing {

// How the broker answers a CONNECT.
struct ConnackScript {
  bool as311 = false;  // no properties (the 3.1.1 shape)
  uint8_t code = 0;    // 3.1.1 return code or MQTT 5 reason code
  std::optional<uint16_t> receiveMaximum;
  std::optional<uint16_t> serverKeepAlive;
  std::optional<uint32_t> maximumPacketSize;
  bool silent = false;  // answer nothing at all
};

// One packet the client sent, decoded as far as the tests need.
struct ReceivedPacket {
  int connection = 0;  // 1 for the first accepted connection, 2 for the next, ...
  bus::mqtt::PacketType type{};
  uint8_t flags = 0;
  std::vector<uint8_t> body;
  // CONNECT
  std::string protocolName;
  uint8_t protocolLevel = 0;
  uint16_t keepAlive = 0;
  // PUBLISH (decoded under the version the connection's CONNECT announced)
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  uint16_t packetId = 0;
  bool retain = false;
  bool hasProperties = false;  // MQTT 5: a non-empty property block
  // DISCONNECT (MQTT 5 reason code; 0 when the body is empty)
  uint8_t reasonCode = 0;
};

class ScriptedBroker final : public net::IoHandler {
 public:
  explicit ScriptedBroker(net::EventLoop& loop);
  ~ScriptedBroker() override;
  ScriptedBroker(const ScriptedBroker&) = delete;
  ScriptedBroker& operator=(const ScriptedBroker&) = delete;

  uint16_t port() const { return port_; }

  // ---- script ----
  // Answers for the next CONNECTs, in order; once used up, `defaultConnack`.
  std::deque<ConnackScript> connacks;
  ConnackScript defaultConnack;
  bool autoPuback = true;  // false: PUBACKs wait for releasePubacks()
  bool answerPings = true;

  // ---- actions on the current connection ----
  bool connected() const { return current_ != nullptr; }
  // Sends PUBACKs for the first `count` withheld publishes (oldest first), in one write.
  void releasePubacks(std::size_t count, uint8_t reasonCode = 0);
  std::size_t withheldPubacks() const;
  // Sends QoS `qos` PUBLISHes (ids from 1 up for QoS 1), all in one write.
  void sendPublishes(std::string_view topic, std::size_t count, uint8_t qos = 1);
  // One PUBLISH with this payload (packet id 1 for QoS 1).
  void sendPublish(std::string_view topic, std::string_view payload, uint8_t qos = 1);
  // MQTT 5 DISCONNECT with a reason code and an optional reason string.
  void sendDisconnect(uint8_t reasonCode, std::string_view reasonString);
  void sendRaw(std::span<const uint8_t> bytes);
  // Closes the current connection (the client sees end of stream).
  void dropConnection();
  // The current connection's socket (-1 when none), for a test thread that floods the client
  // with whole packets; the broker must then have nothing of its own to write (no PUBACKs or
  // PINGRESPs due). The socket is non-blocking.
  int connectionFd() const;

  // ---- what happened ----
  std::vector<ReceivedPacket> received;
  int accepted() const { return accepted_; }
  int closedByClient() const { return closedByClient_; }
  // Reads that returned data, on every connection.
  std::size_t reads() const { return reads_; }
  // TCP data segments the current connection received so far (TCP_INFO), to tell one large
  // write of the client from many small ones: the reader side cannot, as one read takes all.
  uint64_t dataSegmentsIn() const;
  std::vector<const ReceivedPacket*> packets(bus::mqtt::PacketType type) const;
  std::size_t count(bus::mqtt::PacketType type) const { return packets(type).size(); }

  void onIoEvents(uint32_t events) override;

 private:
  struct Connection;
  void accept();
  void onReadable(Connection& c);
  void handle(Connection& c, const bus::mqtt::Packet& packet);
  void write(Connection& c, std::span<const uint8_t> bytes);
  void flushOut(Connection& c);
  void close(Connection& c, bool byClient);

  net::EventLoop& loop_;
  int listenFd_ = -1;
  uint16_t port_ = 0;
  int accepted_ = 0;
  int closedByClient_ = 0;
  std::size_t reads_ = 0;
  std::unique_ptr<Connection> current_;
};

}  // namespace impgate::testing
