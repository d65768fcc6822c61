// Checks the codec against the test vectors in docs/protocol.md, read from the document itself
// so the specification and the code cannot drift apart.
#include <catch2/catch.hpp>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "gateway/base/protocol/codec.h"
#include "tests/unit/base/protocol/frame_bytes.h"

using namespace impgate::protocol;
using namespace impgate::protocol::test;

namespace {

const std::string kFenceTag = "```imp-vector ";

bool isHexPair(const std::string& token) {
  return token.size() == 2 && std::isxdigit(static_cast<unsigned char>(token[0])) &&
         std::isxdigit(static_cast<unsigned char>(token[1]));
}

// Every fenced block tagged "imp-vector NAME": the leading hex pairs of each line, joined.
std::map<std::string, Bytes> readVectors(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::map<std::string, Bytes> vectors;
  std::string line;
  Bytes* current = nullptr;
  while (std::getline(in, line)) {
    if (current == nullptr) {
      if (line.rfind(kFenceTag, 0) == 0) {
        std::string name = line.substr(kFenceTag.size());
        INFO("vector " << name);
        REQUIRE(vectors.count(name) == 0);
        current = &vectors[name];
      }
      continue;
    }
    if (line.rfind("```", 0) == 0) {
      current = nullptr;
      continue;
    }
    std::istringstream tokens(line);
    std::string token;
    while (tokens >> token && isHexPair(token)) {
      current->push_back(static_cast<uint8_t>(std::stoul(token, nullptr, 16)));
    }
  }
  REQUIRE(current == nullptr);
  return vectors;
}

std::span<const uint8_t> asBytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// The frames the document describes, by vector name.
std::map<std::string, Frame> expectedFrames() {
  return {
      {"hello", Hello{.version = 1, .capabilities = 0, .codeId = "fw-1.4.2"}},
      {"welcome", Welcome{.version = 1,
                          .sessionId = 0x0123456789abcdef,
                          .keepaliveSeconds = 60,
                          .serverTimeMs = 1700000000000,
                          .node = "gw-a"}},
      {"msg", Msg{.id = 7, .ackWanted = true, .event = "temp", .payload = asBytes("21.5")}},
      {"ack", Ack{.id = 7, .status = AckStatus::kOk}},
      {"ping", Ping{.nonce = 0x1122334455667788}},
      {"pong", Pong{.nonce = 0x1122334455667788}},
      {"log", Log{.level = LogLevel::kWarn, .text = "low battery"}},
      {"bye", Bye{.reason = ByeReason::kKeepaliveTimeout, .text = "idle 90s"}},
  };
}

std::string hex(const Bytes& bytes) {
  std::string out;
  char buf[4];
  for (uint8_t b : bytes) {
    std::snprintf(buf, sizeof buf, "%02x ", b);
    out += buf;
  }
  return out;
}

}  // namespace

TEST_CASE("docs/protocol.md test vectors match the codec") {
  const std::map<std::string, Bytes> vectors =
      readVectors(std::string(IMPGATE_SOURCE_DIR) + "/docs/protocol.md");
  const std::map<std::string, Frame> expected = expectedFrames();

  std::set<std::string> documented;
  for (const auto& [name, bytes] : vectors) {
    documented.insert(name);
  }
  std::set<std::string> described;
  for (const auto& [name, frame] : expected) {
    described.insert(name);
  }
  CHECK(documented == described);

  std::set<uint8_t> typesCovered;
  for (const auto& [name, bytes] : vectors) {
    INFO("vector " << name << ": " << hex(bytes));
    auto it = expected.find(name);
    if (it == expected.end()) {
      continue;
    }
    CHECK(hex(encoded(it->second)) == hex(bytes));

    Frame decoded;
    REQUIRE(decodeWhole(bytes, decoded) == DecodeError::kNone);
    CHECK(decoded.index() == it->second.index());
    CHECK(decoded == it->second);
    CHECK(frameTypeName(bytes[4]) == name);
    typesCovered.insert(bytes[4]);
  }
  CHECK(typesCovered.size() == std::variant_size_v<Frame>);
}
