#include <catch2/catch.hpp>
#include <string>

#include "gateway/base/names.h"

using impgate::isValidDeviceId;
using impgate::isValidEventName;

TEST_CASE("device ids that fit the topic scheme are accepted") {
  CHECK(isValidDeviceId("imp-0001"));
  CHECK(isValidDeviceId("a.b_c-D9"));
  CHECK(isValidDeviceId(std::string(64, 'x')));
}

TEST_CASE("device ids that would break the topic scheme are refused") {
  CHECK_FALSE(isValidDeviceId(""));
  CHECK_FALSE(isValidDeviceId(std::string(65, 'x')));
  CHECK_FALSE(isValidDeviceId("a/b"));
  CHECK_FALSE(isValidDeviceId("a+b"));
  CHECK_FALSE(isValidDeviceId("#"));
  CHECK_FALSE(isValidDeviceId(std::string("a\0b", 3)));
  CHECK_FALSE(isValidDeviceId(".hidden"));
  CHECK_FALSE(isValidDeviceId("space here"));
}

TEST_CASE("event names: printable ASCII without wildcards or separators") {
  CHECK(isValidEventName("temp"));
  CHECK(isValidEventName("temp.reading:v2"));
  CHECK(isValidEventName(std::string(64, 'e')));
  CHECK_FALSE(isValidEventName(""));
  CHECK_FALSE(isValidEventName(std::string(65, 'e')));
  CHECK_FALSE(isValidEventName("a/b"));
  CHECK_FALSE(isValidEventName("a+"));
  CHECK_FALSE(isValidEventName("#"));
  CHECK_FALSE(isValidEventName("with space"));
  CHECK_FALSE(isValidEventName(std::string("a\0", 2)));
  CHECK_FALSE(isValidEventName("caf\xc3\xa9"));
}

TEST_CASE("code ids are exactly 64 lower-case hex digits") {
  using impgate::isValidCodeId;
  const std::string sha(64, 'a');
  CHECK(isValidCodeId(sha));
  CHECK(isValidCodeId("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
  CHECK_FALSE(isValidCodeId(""));
  CHECK_FALSE(isValidCodeId(std::string(63, 'a')));
  CHECK_FALSE(isValidCodeId(std::string(65, 'a')));
  CHECK_FALSE(isValidCodeId(std::string(64, 'A')));  // one spelling per version
  CHECK_FALSE(isValidCodeId(std::string(63, 'a') + "g"));
  CHECK_FALSE(isValidCodeId(std::string(63, 'a') + "+"));
}

TEST_CASE("group names follow the device-id rules") {
  using impgate::isValidGroupName;
  CHECK(isValidGroupName("default"));
  CHECK(isValidGroupName("kitchen-2.b_c"));
  CHECK_FALSE(isValidGroupName(""));
  CHECK_FALSE(isValidGroupName(".x"));
  CHECK_FALSE(isValidGroupName("a/b"));
  CHECK_FALSE(isValidGroupName("+"));
  CHECK_FALSE(isValidGroupName(std::string(65, 'g')));
}
