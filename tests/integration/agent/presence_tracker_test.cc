// The agent SDK's pure logic (presence ordering, receipt parsing), tested without a broker.
#include "bus/agent/presence_tracker.h"

#include <catch2/catch.hpp>

#include "bus/agent/receipt.h"

using impgate::bus::DeviceState;
using impgate::bus::parseDeviceState;
using impgate::bus::parseReceipt;
using impgate::bus::PresenceTracker;
using Change = PresenceTracker::Change;

namespace {

DeviceState online(int64_t epoch) {
  return {true, epoch, epoch, "gw1", "c1", ""};
}
DeviceState offline(int64_t epoch) {
  return {false, epoch, epoch + 5, "gw1", "", "bye"};
}

}  // namespace

TEST_CASE("state payloads of the bus contract are parsed") {
  auto on = parseDeviceState(
      R"({"status":"online","node":"gw1","code":"abc","since":1764115200000,"epoch":1764115100000})");
  REQUIRE(on);
  CHECK(on->online);
  CHECK(on->epoch == 1764115100000);
  CHECK(on->since == 1764115200000);
  CHECK(on->node == "gw1");
  CHECK(on->code == "abc");
  auto off = parseDeviceState(
      R"({"status":"offline","node":"gw1","since":5,"epoch":4,"reason":"keepalive_timeout"})");
  REQUIRE(off);
  CHECK_FALSE(off->online);
  CHECK(off->reason == "keepalive_timeout");
}

TEST_CASE("malformed state payloads are refused") {
  for (const char* bad : {"", "null", "[]", "{", R"({"status":"online"})",
                          R"({"status":"away","epoch":1})", R"({"status":"online","epoch":"1"})",
                          R"({"status":1,"epoch":1})", R"({"status":"online","epoch":1.5})",
                          R"({"status":"online","epoch":18446744073709551615})"}) {
    INFO(bad);
    CHECK_FALSE(parseDeviceState(bad));
  }
}

TEST_CASE("presence reports transitions only") {
  PresenceTracker t;
  CHECK(t.apply("d", online(10)) == Change::kConnected);
  CHECK(t.isOnline("d"));
  CHECK(t.apply("d", online(10)) == Change::kNone);  // repeat (e.g. a code change)
  CHECK(t.apply("d", offline(10)) == Change::kDisconnected);
  CHECK_FALSE(t.isOnline("d"));
  CHECK(t.apply("d", offline(10)) == Change::kNone);
  CHECK(t.apply("d", online(20)) == Change::kConnected);
}

TEST_CASE("a device first seen offline is not a disconnect") {
  PresenceTracker t;
  CHECK(t.apply("d", offline(10)) == Change::kNone);
  CHECK_FALSE(t.isOnline("d"));
  CHECK(t.apply("d", online(20)) == Change::kConnected);
}

TEST_CASE("states of older sessions are stale") {
  PresenceTracker t;
  t.apply("d", online(10));
  CHECK(t.apply("d", online(20)) == Change::kReplaced);  // the offline of 10 was not seen yet
  CHECK(t.apply("d", offline(10)) == Change::kStale);    // ...and now arrives late
  CHECK(t.isOnline("d"));
  CHECK(t.apply("d", online(10)) == Change::kStale);
  CHECK(t.apply("d", offline(20)) == Change::kDisconnected);
  // Within one session offline is final: a duplicate online of that session is stale.
  CHECK(t.apply("d", online(20)) == Change::kStale);
  CHECK_FALSE(t.isOnline("d"));
}

TEST_CASE("a cleared state takes an online device offline and keeps its epoch") {
  PresenceTracker t;
  CHECK(t.clear("d") == Change::kNone);
  t.apply("d", online(10));
  CHECK(t.clear("d") == Change::kDisconnected);
  CHECK_FALSE(t.isOnline("d"));
  CHECK(t.apply("d", online(10)) == Change::kStale);
  CHECK(t.apply("d", online(11)) == Change::kConnected);
}

TEST_CASE("devices are tracked independently") {
  PresenceTracker t;
  t.apply("a", online(10));
  t.apply("b", online(5));
  CHECK(t.apply("b", offline(5)) == Change::kDisconnected);
  CHECK(t.isOnline("a"));
  CHECK(t.size() == 2);
}

TEST_CASE("receipts are parsed, corr from JSON or the MQTT 5 property") {
  auto r = parseReceipt(
      "d1",
      R"({"event":"led","seq":17,"status":"delivered","node":"gw1","ts":1764115200000,"corr":"c-1"})");
  REQUIRE(r);
  CHECK(r->device == "d1");
  CHECK(r->event == "led");
  CHECK(r->seq == 17);
  CHECK(r->delivered());
  CHECK(r->node == "gw1");
  CHECK(r->ts == 1764115200000);
  CHECK(r->corr == "c-1");

  auto p = parseReceipt("d1", R"({"event":"led","seq":1,"status":"rejected"})", "from-prop");
  REQUIRE(p);
  CHECK_FALSE(p->delivered());
  CHECK(p->status == "rejected");
  CHECK(p->corr == "from-prop");

  for (const char* bad :
       {"", "{}", R"({"event":"led","status":"delivered"})",
        R"({"event":"led","seq":-1,"status":"delivered"})",
        R"({"event":1,"seq":1,"status":"delivered"})", R"({"event":"led","seq":1,"status":""})"}) {
    INFO(bad);
    CHECK_FALSE(parseReceipt("d1", bad));
  }
}
