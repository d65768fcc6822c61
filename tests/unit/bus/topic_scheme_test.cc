#include "bus/topics/topic_scheme.h"

#include <catch2/catch.hpp>

using impgate::bus::TopicScheme;
using Kind = TopicScheme::Kind;

TEST_CASE("topics are built exactly as the bus contract says") {
  TopicScheme t;
  CHECK(t.deviceOut("d1", "temp") == "imp/dev/d1/out/temp");
  CHECK(t.deviceIn("d1", "led") == "imp/dev/d1/in/led");
  CHECK(t.deviceAck("d1") == "imp/dev/d1/ack");
  CHECK(t.deviceState("d1") == "imp/dev/d1/state");
  CHECK(t.deviceLog("d1") == "imp/dev/d1/log");
  CHECK(t.nodeState("gw-a") == "imp/gw/gw-a/state");
  CHECK(t.deviceInFilter("d1") == "imp/dev/d1/in/+");
  CHECK(t.allDeviceOut() == "imp/dev/+/out/+");
  CHECK(t.allDeviceState() == "imp/dev/+/state");
}

TEST_CASE("a custom prefix may have several levels") {
  TopicScheme t("acme/prod");
  CHECK(t.deviceOut("d1", "e") == "acme/prod/dev/d1/out/e");
  auto p = t.parse("acme/prod/dev/d1/in/led");
  REQUIRE(p);
  CHECK(p->kind == Kind::kDeviceIn);
  CHECK(p->name == "d1");
  CHECK(p->event == "led");
  CHECK_FALSE(t.parse("imp/dev/d1/in/led"));
}

TEST_CASE("prefix validation refuses wildcards and empty levels") {
  CHECK(TopicScheme::isValidPrefix("imp"));
  CHECK(TopicScheme::isValidPrefix("a/b-c"));
  CHECK_FALSE(TopicScheme::isValidPrefix(""));
  CHECK_FALSE(TopicScheme::isValidPrefix("/imp"));
  CHECK_FALSE(TopicScheme::isValidPrefix("imp/"));
  CHECK_FALSE(TopicScheme::isValidPrefix("a//b"));
  CHECK_FALSE(TopicScheme::isValidPrefix("a/+"));
  CHECK_FALSE(TopicScheme::isValidPrefix("#"));
}

TEST_CASE("parse recognises every topic of the scheme") {
  TopicScheme t;
  auto out = t.parse("imp/dev/d1/out/temp");
  REQUIRE(out);
  CHECK(out->kind == Kind::kDeviceOut);
  CHECK(out->event == "temp");
  CHECK(t.parse("imp/dev/d1/ack")->kind == Kind::kDeviceAck);
  CHECK(t.parse("imp/dev/d1/state")->kind == Kind::kDeviceState);
  CHECK(t.parse("imp/dev/d1/log")->kind == Kind::kDeviceLog);
  auto gw = t.parse("imp/gw/n1/state");
  REQUIRE(gw);
  CHECK(gw->kind == Kind::kNodeState);
  CHECK(gw->name == "n1");
}

TEST_CASE("parse refuses topics outside the scheme or with bad names") {
  TopicScheme t;
  CHECK_FALSE(t.parse("imp"));
  CHECK_FALSE(t.parse("imp/"));
  CHECK_FALSE(t.parse("impx/dev/d1/ack"));
  CHECK_FALSE(t.parse("imp/dev/d1/in"));
  CHECK_FALSE(t.parse("imp/dev/d1/in/"));
  CHECK_FALSE(t.parse("imp/dev/d1/in/a/b"));
  CHECK_FALSE(t.parse("imp/dev/d1/ack/"));
  CHECK_FALSE(t.parse("imp/dev/d1/other"));
  CHECK_FALSE(t.parse("imp/dev/d+1/ack"));
  CHECK_FALSE(t.parse("imp/dev/d1/in/a b"));
  CHECK_FALSE(t.parse("imp/gw/n1/state/x"));
}
