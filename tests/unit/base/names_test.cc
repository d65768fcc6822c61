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
