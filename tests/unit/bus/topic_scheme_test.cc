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

namespace {
const std::string kSha(64, 'a');
const std::string kSha2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
}  // namespace

TEST_CASE("code push topics are built as the bus contract says") {
  TopicScheme t;
  CHECK(t.codeChunk(kSha2) == "imp/code/chunk/" + kSha2);
  CHECK(t.codeVersion(kSha2) == "imp/code/ver/" + kSha2);
  CHECK(t.groupDeploy("kitchen") == "imp/grp/kitchen/deploy");
  CHECK(t.groupRollout("kitchen", "gw-a") == "imp/grp/kitchen/rollout/gw-a");
  CHECK(t.deviceGroup("d1") == "imp/dev/d1/group");
  CHECK(t.deviceCode("d1") == "imp/dev/d1/code");
  CHECK(t.allCodeChunks() == "imp/code/chunk/+");
  CHECK(t.allCodeVersions() == "imp/code/ver/+");
  CHECK(t.allDeployments() == "imp/grp/+/deploy");
  CHECK(t.allRollouts() == "imp/grp/+/rollout/+");
  CHECK(t.groupRollouts("kitchen") == "imp/grp/kitchen/rollout/+");
  CHECK(t.allDeviceGroups() == "imp/dev/+/group");
  CHECK(t.allDeviceCodeStates() == "imp/dev/+/code");
  CHECK(t.allDeviceAck() == "imp/dev/+/ack");
  CHECK(t.allDeviceLog() == "imp/dev/+/log");

  TopicScheme custom("acme/prod");
  CHECK(custom.groupDeploy("g") == "acme/prod/grp/g/deploy");
  CHECK(custom.codeChunk(kSha) == "acme/prod/code/chunk/" + kSha);
}

TEST_CASE("the reusable-buffer builders replace what the buffer held") {
  TopicScheme t;
  std::string buffer = "left over from the last message";
  t.groupRollout(buffer, "g", "n");
  CHECK(buffer == "imp/grp/g/rollout/n");
  t.codeVersion(buffer, kSha);
  CHECK(buffer == "imp/code/ver/" + kSha);
  t.deviceCode(buffer, "d9");
  CHECK(buffer == "imp/dev/d9/code");
}

TEST_CASE("parse recognises every code push topic") {
  TopicScheme t;
  // parse() returns views into the topic, so the topics must outlive the results.
  const std::string chunkTopic = "imp/code/chunk/" + kSha2;
  const std::string verTopic = "imp/code/ver/" + kSha;
  auto chunk = t.parse(chunkTopic);
  REQUIRE(chunk);
  CHECK(chunk->kind == Kind::kCodeChunk);
  CHECK(chunk->name == kSha2);
  auto ver = t.parse(verTopic);
  REQUIRE(ver);
  CHECK(ver->kind == Kind::kCodeVersion);
  CHECK(ver->name == kSha);
  auto deploy = t.parse("imp/grp/kitchen/deploy");
  REQUIRE(deploy);
  CHECK(deploy->kind == Kind::kGroupDeploy);
  CHECK(deploy->name == "kitchen");
  auto rollout = t.parse("imp/grp/kitchen/rollout/gw-a");
  REQUIRE(rollout);
  CHECK(rollout->kind == Kind::kGroupRollout);
  CHECK(rollout->name == "kitchen");
  CHECK(rollout->node == "gw-a");
  auto group = t.parse("imp/dev/d1/group");
  REQUIRE(group);
  CHECK(group->kind == Kind::kDeviceGroup);
  CHECK(group->name == "d1");
  auto code = t.parse("imp/dev/d1/code");
  REQUIRE(code);
  CHECK(code->kind == Kind::kDeviceCode);
  CHECK(code->name == "d1");

  TopicScheme custom("acme/prod");
  auto r = custom.parse("acme/prod/grp/g/rollout/n");
  REQUIRE(r);
  CHECK(r->kind == Kind::kGroupRollout);
  CHECK_FALSE(custom.parse("imp/grp/g/rollout/n"));
}

TEST_CASE("parse refuses code push topics with bad names or shapes") {
  TopicScheme t;
  // The sha: exactly 64 lower-case hex digits.
  CHECK_FALSE(t.parse("imp/code/chunk/" + std::string(63, 'a')));
  CHECK_FALSE(t.parse("imp/code/chunk/" + std::string(65, 'a')));
  CHECK_FALSE(t.parse("imp/code/chunk/" + std::string(64, 'A')));
  CHECK_FALSE(t.parse("imp/code/ver/" + std::string(63, 'a') + "g"));
  CHECK_FALSE(t.parse("imp/code/ver/+"));
  CHECK_FALSE(t.parse("imp/code/other/" + kSha));
  CHECK_FALSE(t.parse("imp/code/chunk/" + kSha + "/x"));
  CHECK_FALSE(t.parse("imp/code/chunk/" + kSha + "/"));
  CHECK_FALSE(t.parse("imp/code/chunk"));
  CHECK_FALSE(t.parse("imp/code/chunk/"));
  // The group: device-id rules.
  CHECK_FALSE(t.parse("imp/grp/.g/deploy"));
  CHECK_FALSE(t.parse("imp/grp/a+b/deploy"));
  CHECK_FALSE(t.parse("imp/grp/" + std::string(65, 'g') + "/deploy"));
  CHECK_FALSE(t.parse("imp/grp//deploy"));
  CHECK_FALSE(t.parse("imp/grp/g/deploy/x"));
  CHECK_FALSE(t.parse("imp/grp/g/deploy/"));
  CHECK_FALSE(t.parse("imp/grp/g/other"));
  CHECK_FALSE(t.parse("imp/grp/g"));
  // The node of a rollout view.
  CHECK_FALSE(t.parse("imp/grp/g/rollout"));
  CHECK_FALSE(t.parse("imp/grp/g/rollout/"));
  CHECK_FALSE(t.parse("imp/grp/g/rollout/n/x"));
  CHECK_FALSE(t.parse("imp/grp/g/rollout/+"));
  CHECK_FALSE(t.parse("imp/grp/g/rollout/.n"));
  // Device leaves.
  CHECK_FALSE(t.parse("imp/dev/d1/group/x"));
  CHECK_FALSE(t.parse("imp/dev/d1/code/"));
  CHECK_FALSE(t.parse("imp/dev/d+1/code"));
  CHECK_FALSE(t.parse("imp/dev/+/group"));
}

TEST_CASE("the existing topics parse as before next to the new ones") {
  TopicScheme t;
  auto out = t.parse("imp/dev/d1/out/temp");
  REQUIRE(out);
  CHECK(out->kind == Kind::kDeviceOut);
  CHECK(out->name == "d1");
  CHECK(out->event == "temp");
  CHECK(out->node.empty());
  auto in = t.parse("imp/dev/d1/in/led");
  REQUIRE(in);
  CHECK(in->kind == Kind::kDeviceIn);
  CHECK(in->event == "led");
  // A device may be called like a topic leaf; an event may be called like one too.
  CHECK(t.parse("imp/dev/code/state")->kind == Kind::kDeviceState);
  CHECK(t.parse("imp/dev/group/out/code")->kind == Kind::kDeviceOut);
  CHECK(t.parse("imp/gw/deploy/state")->kind == Kind::kNodeState);
  CHECK_FALSE(t.parse("imp/gw/n1/deploy"));
  CHECK_FALSE(t.parse("imp/gw/n1/state/"));
  CHECK_FALSE(t.parse("imp/other/x/y"));
}
