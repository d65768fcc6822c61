#include "bus/fleet/base64.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using impgate::bus::fleet::base64Decode;
using impgate::bus::fleet::base64Encode;

namespace {

std::vector<uint8_t> bytes(std::string_view text) {
  return {text.begin(), text.end()};
}

}  // namespace

TEST_CASE("base64 encodes the RFC 4648 test vectors") {
  CHECK(base64Encode(bytes("")) == "");
  CHECK(base64Encode(bytes("f")) == "Zg==");
  CHECK(base64Encode(bytes("fo")) == "Zm8=");
  CHECK(base64Encode(bytes("foo")) == "Zm9v");
  CHECK(base64Encode(bytes("foob")) == "Zm9vYg==");
  CHECK(base64Encode(bytes("fooba")) == "Zm9vYmE=");
  CHECK(base64Encode(bytes("foobar")) == "Zm9vYmFy");
  CHECK(base64Encode(std::vector<uint8_t>{0xfb, 0xff, 0xbf}) == "+/+/");
}

TEST_CASE("base64 decodes what it encodes, for every length and byte") {
  for (std::size_t n = 0; n < 70; ++n) {
    std::vector<uint8_t> data(n);
    for (std::size_t i = 0; i < n; ++i) data[i] = static_cast<uint8_t>(i * 37 + n);
    auto back = base64Decode(base64Encode(data));
    REQUIRE(back);
    CHECK(*back == data);
  }
  CHECK(base64Decode("Zm9vYmFy") == bytes("foobar"));
  CHECK(base64Decode("") == std::vector<uint8_t>{});
}

TEST_CASE("base64 refuses what is not canonical base64") {
  CHECK_FALSE(base64Decode("Zg="));     // length not a multiple of 4
  CHECK_FALSE(base64Decode("Zg"));      // padding is required
  CHECK_FALSE(base64Decode("Zm9v\n"));  // no whitespace
  CHECK_FALSE(base64Decode("Zm 9"));
  CHECK_FALSE(base64Decode("Zm-v"));  // the URL alphabet is not this one
  CHECK_FALSE(base64Decode("Zm_v"));
  CHECK_FALSE(base64Decode("Z==="));  // at most two '='
  CHECK_FALSE(base64Decode("===="));
  CHECK_FALSE(base64Decode("Zg==Zm9v"));  // '=' only at the end
  CHECK_FALSE(base64Decode("Zm=v"));
  CHECK_FALSE(base64Decode("Zh=="));  // unused bits set: "Zg==" is the only spelling
  CHECK_FALSE(base64Decode("Zm9="));  // "Zm8=" is
  CHECK_FALSE(base64Decode(std::string("Zm\0v", 4)));
}
