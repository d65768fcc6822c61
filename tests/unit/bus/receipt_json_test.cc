#include "bus/bridge/receipt_json.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using impgate::bus::appendJsonString;
using impgate::bus::Receipt;
using impgate::bus::writeReceiptJson;

namespace {

std::string jsonQuoted(std::string_view text) {
  std::string out;
  appendJsonString(out, text);
  return out;
}

}  // namespace

TEST_CASE("a receipt is a JSON document with the contract's fields") {
  std::string out = "left over";
  writeReceiptJson(out, Receipt{"set", 7, "delivered", "abc", "gw-a"}, 1700000000123);
  auto j = nlohmann::json::parse(out);
  CHECK(j.at("event") == "set");
  CHECK(j.at("seq") == 7);
  CHECK(j.at("status") == "delivered");
  CHECK(j.at("node") == "gw-a");
  CHECK(j.at("ts") == 1700000000123ULL);
  CHECK(j.at("corr") == "abc");

  writeReceiptJson(out, Receipt{"set", 0, "failed", "", "gw-a"}, 1);
  CHECK_FALSE(nlohmann::json::parse(out).contains("corr"));
}

TEST_CASE("JSON strings escape quotes, backslashes and control characters") {
  CHECK(jsonQuoted("plain") == "\"plain\"");
  CHECK(jsonQuoted("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(jsonQuoted(std::string_view("\n\x01\x1f", 3)) == "\"\\u000a\\u0001\\u001f\"");
  std::string withNul("x\0y", 3);
  CHECK(nlohmann::json::parse(jsonQuoted(withNul)) == withNul);
}

TEST_CASE("valid UTF-8 passes through; anything else becomes U+FFFD") {
  CHECK(jsonQuoted("grüß ✓ 😀") == "\"grüß ✓ 😀\"");
  const std::string replacement = "\xEF\xBF\xBD";
  // A lone continuation byte, a truncated sequence, an overlong form, a surrogate, a code
  // point above U+10FFFF, and bytes that never start a sequence.
  for (std::string bad :
       {std::string("\x80"), std::string("\xE2\x9C"), std::string("\xC0\xAF"),
        std::string("\xED\xA0\x80"), std::string("\xF4\x90\x80\x80"), std::string("\xFF\xFE")}) {
    INFO("bytes " << bad.size());
    std::string out = jsonQuoted("a" + bad + "b");
    auto parsed = nlohmann::json::parse(out);  // throws on invalid UTF-8
    std::string text = parsed.get<std::string>();
    CHECK(text.front() == 'a');
    CHECK(text.back() == 'b');
    CHECK(text.find(replacement) != std::string::npos);
  }
}
