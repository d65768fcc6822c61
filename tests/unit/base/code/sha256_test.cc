#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "gateway/base/code/hex.h"
#include "gateway/base/code/sha256.h"

using namespace impgate::code;

TEST_CASE("sha256 matches the FIPS 180-2 examples") {
  CHECK(toHex(sha256(std::string_view(""))) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(toHex(sha256(std::string_view("abc"))) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("sha256 in pieces equals sha256 at once, and a stream starts over after finish") {
  std::string text = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  Sha256Stream stream;
  for (size_t i = 0; i < text.size(); i += 5) {
    std::string_view piece = std::string_view(text).substr(i, 5);
    stream.update({reinterpret_cast<const uint8_t*>(piece.data()), piece.size()});
  }
  CHECK(toHex(stream.finish()) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(stream.finish() == sha256(std::string_view("")));
  Sha256Stream moved = std::move(stream);
  moved.update({reinterpret_cast<const uint8_t*>("abc"), 3});
  CHECK(moved.finish() == sha256(std::string_view("abc")));
}

TEST_CASE("hex to and from bytes") {
  CHECK(toHex(std::vector<uint8_t>{0x00, 0x0f, 0xa0, 0xff}) == "000fa0ff");
  CHECK(fromHex("000fA0ff") == std::vector<uint8_t>{0x00, 0x0f, 0xa0, 0xff});
  CHECK(fromHex("") == std::vector<uint8_t>{});
  CHECK_FALSE(fromHex("abc").has_value());
  CHECK_FALSE(fromHex("0g").has_value());
  CHECK_FALSE(fromHex("0 ").has_value());

  const std::string id = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  REQUIRE(sha256FromHex(id).has_value());
  CHECK(*sha256FromHex(id) == sha256(std::string_view("abc")));
  CHECK(isSha256Hex(id));
  std::string upper = id;
  upper[0] = 'B';
  CHECK_FALSE(sha256FromHex(upper).has_value());  // one hash, one spelling
  CHECK_FALSE(sha256FromHex(id.substr(1)).has_value());
  CHECK_FALSE(sha256FromHex(id + "0").has_value());
  CHECK_FALSE(isSha256Hex(""));
}
