// Checks the codec against the test vectors in docs/protocol.md, read from the document itself
// so the specification and the code cannot drift apart.
#include <array>
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

template <size_t N>
std::array<uint8_t, N> fromHex(std::string_view hex) {
  std::array<uint8_t, N> out{};  // `hex` holds 2 * N digits
  for (size_t i = 0; i < N; ++i) {
    out[i] = static_cast<uint8_t>(std::stoul(std::string(hex.substr(2 * i, 2)), nullptr, 16));
  }
  return out;
}

// The code push example: "imp code v2\n" in the chunks "imp code " and "v2\n".
const CodeHash kCode =
    fromHex<32>("7a7f133f603f895cc26b9979ca49ed65bdbd533cb2bcc7c06730a5b08400c850");

const Bytes& exampleChunkList() {
  static const Bytes list = [] {
    Bytes raw;
    appendCodeChunk(
        {fromHex<32>("84625f445d2dfed852495aeef73de60accecbde6f574c9abe3cc0a715cc94549"), 9}, raw);
    appendCodeChunk(
        {fromHex<32>("81db67b6a5702b9b68f0016f061c409bf3fb16d062fc854d1b424bb4e9c28c56"), 3}, raw);
    return raw;
  }();
  return list;
}

// The frames the document describes, by vector name.
std::map<std::string, Frame> expectedFrames() {
  return {
      {"code_offer",
       CodeOffer{.deployment = 3,
                 .mandatory = false,
                 .code = kCode,
                 .size = 12,
                 .signature = fromHex<64>(
                     "48c75f76cda78ade80c7d04551850ef74c907a602983565a19919ab827022a58"
                     "8db941e7842e8086d76e62d69637d3caa36e15ffae70a9e115dcd32bb3c18402"),
                 .chunks = CodeChunkList(exampleChunkList())}},
      {"code_get", CodeGet{.code = kCode, .offset = 9, .length = 3}},
      {"code_data", CodeData{.code = kCode, .offset = 9, .data = asBytes("v2\n")}},
      {"code_result",
       CodeResult{.code = kCode, .status = CodeResultStatus::kFailed, .reason = "corrupt chunk"}},
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
