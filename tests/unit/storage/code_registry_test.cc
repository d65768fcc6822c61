#include "storage/code_registry.h"

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "storage/audit_log.h"
#include "storage/device_registry.h"
#include "storage/migrations.h"
#include "tests/support/testbed.h"

using namespace impgate::storage;
using impgate::testing::TempDir;

namespace {

// Storage takes the caller's hash as given, so any 64 hex characters name a version here.
std::string sha(char c) {
  return std::string(64, c);
}

std::vector<std::uint8_t> bytes(std::string_view text) {
  return std::vector<std::uint8_t>(text.begin(), text.end());
}

CodeSignature signature(std::uint8_t fill) {
  CodeSignature s;
  s.fill(fill);
  return s;
}

NewCodeVersion newVersion(char c, std::string_view content = "", std::int64_t at = 1000) {
  std::string body = content.empty() ? std::string("code ") + c : std::string(content);
  return NewCodeVersion{sha(c),
                        static_cast<std::int64_t>(body.size()),
                        "version " + std::string(1, c),
                        "alice",
                        at,
                        signature(static_cast<std::uint8_t>(c)),
                        bytes(body)};
}

DeviceRecord device(std::string id, std::string group) {
  return DeviceRecord{std::move(id), std::move(group), "0A1B", std::nullopt, 500, std::nullopt};
}

RolloutPolicy policy(std::vector<int> stages, std::int64_t maxConcurrent = 0, double halt = 100) {
  return RolloutPolicy{std::move(stages), maxConcurrent, halt};
}

// A migrated database in a temp dir with the registries on it.
struct Fixture {
  TempDir dir;
  Database db = std::move(Database::open(dir.path() / "impgate.db")).value();
  CodeRegistry code = std::move(CodeRegistry::open(db)).value();
  DeviceRegistry devices = std::move(DeviceRegistry::open(db)).value();
  AuditLog audit = std::move(AuditLog::open(db)).value();

  std::int64_t count(const std::string& sql) {
    Result<Statement> s = db.prepare(sql);
    REQUIRE(s.ok());
    Result<bool> row = s->step();
    REQUIRE(row.ok());
    REQUIRE(*row);
    return s->columnInt(0);
  }

  // Two versions and group "g" with devices imp-1, imp-2.
  void standardSetup() {
    REQUIRE(code.addVersion(newVersion('1')).ok());
    REQUIRE(code.addVersion(newVersion('2')).ok());
    REQUIRE(code.addVersion(newVersion('3')).ok());
    REQUIRE(code.createGroup("g", 100, "test").ok());
    REQUIRE(devices.enroll(device("imp-1", "g"), "test").ok());
    REQUIRE(devices.enroll(device("imp-2", "g"), "test").ok());
  }

  std::int64_t deploy(char version, bool minSupported = false, const std::string& group = "g") {
    Result<std::int64_t> n =
        code.createDeployment(group, sha(version), policy({100}), minSupported, "alice", "", 2000);
    REQUIRE(n.ok());
    return *n;
  }

  // Every table's row count, to show a refused change left nothing behind.
  std::vector<std::int64_t> snapshot() {
    return {count("SELECT count(*) FROM code_versions"),
            count("SELECT count(*) FROM device_groups"),
            count("SELECT count(*) FROM deployments"),
            count("SELECT count(*) FROM push_history"),
            count("SELECT count(*) FROM audit_log"),
            count("SELECT coalesce(sum(next_deployment), 0) FROM device_groups"),
            count("SELECT coalesce(sum(min_supported), 0) FROM device_groups"),
            count("SELECT count(*) FROM devices WHERE group_name = 'g'")};
  }
};

PushState push(std::string device, std::int64_t deployment, char version, std::string state,
               std::string reason = "", std::int64_t at = 3000) {
  return PushState{std::move(device), "g", deployment, sha(version), std::move(state),
                   std::move(reason), at,  "node-a"};
}

}  // namespace

// ---- Versions

TEST_CASE_METHOD(Fixture, "a version is stored with its bytes and listed without them") {
  NewCodeVersion v = newVersion('a', "print('hello')");
  Result<AddedVersion> added = code.addVersion(v);
  REQUIRE(added.ok());
  CHECK_FALSE(added->existed);
  const CodeVersion expected{v.sha, 14, v.note, "alice", 1000, v.signature};
  CHECK(added->version == expected);

  Result<std::optional<CodeVersion>> found = code.version(v.sha);
  REQUIRE(found.ok());
  REQUIRE(found->has_value());
  CHECK(**found == expected);
  CHECK(*code.versionContent(v.sha) == bytes("print('hello')"));

  REQUIRE(code.addVersion(newVersion('b', "x", 500)).ok());
  Result<std::vector<CodeVersion>> all = code.listVersions();
  REQUIRE(all.ok());
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].sha == sha('b'));  // oldest first
  CHECK((*all)[1] == expected);

  CHECK_FALSE(code.version(sha('c'))->has_value());
  Result<std::vector<std::uint8_t>> missing = code.versionContent(sha('c'));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == ErrorCode::kNotFound);

  Result<std::vector<AuditEntry>> entries = audit.recent(1);
  CHECK((*entries)[0].action == "code.add");
  CHECK((*entries)[0].actor == "alice");
}

TEST_CASE_METHOD(Fixture,
                 "adding the same version again returns the stored one and changes nothing") {
  REQUIRE(code.addVersion(newVersion('a', "same bytes", 1000)).ok());
  const auto before = snapshot();

  NewCodeVersion again = newVersion('a', "same bytes", 9999);
  again.note = "another note";
  Result<AddedVersion> added = code.addVersion(again);
  REQUIRE(added.ok());
  CHECK(added->existed);
  CHECK(added->version.note == "version a");
  CHECK(added->version.createdAtMs == 1000);
  CHECK(snapshot() == before);

  // The same hash with other bytes means the caller's hash is wrong: refused.
  Result<AddedVersion> other = code.addVersion(newVersion('a', "other bytes"));
  REQUIRE_FALSE(other.ok());
  CHECK(other.error().code == ErrorCode::kAlreadyExists);
  CHECK_THAT(other.error().message, Catch::Contains("other bytes"));
  CHECK(*code.versionContent(sha('a')) == bytes("same bytes"));
  CHECK(snapshot() == before);
}

TEST_CASE_METHOD(Fixture, "bad versions are refused with a clear error and store nothing") {
  const auto before = snapshot();
  auto refused = [&](NewCodeVersion v, const std::string& text) {
    Result<AddedVersion> r = code.addVersion(v);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kInvalidInput);
    CHECK_THAT(r.error().message, Catch::Contains(text));
  };

  NewCodeVersion empty = newVersion('a');
  empty.content.clear();
  empty.size = 0;
  refused(empty, "empty");

  NewCodeVersion oversized = newVersion('a');
  oversized.content.assign(static_cast<std::size_t>(kMaxStoredCodeSize) + 1, 0x55);
  oversized.size = kMaxStoredCodeSize + 1;
  refused(oversized, "at most 4194304");

  NewCodeVersion wrongSize = newVersion('a', "12345");
  wrongSize.size = 6;
  refused(wrongSize, "is not the code's size (5)");

  for (std::string bad : {std::string(63, 'a'), std::string(65, 'a'), std::string(64, 'A'),
                          std::string(64, 'g'), std::string(""), "../" + std::string(61, 'a')}) {
    NewCodeVersion v = newVersion('a');
    v.sha = bad;
    refused(v, "is not a SHA-256");
  }

  NewCodeVersion control = newVersion('a');
  control.note = "line\x1b[2J";
  refused(control, "control character");
  NewCodeVersion notUtf8 = newVersion('a');
  notUtf8.author = "\xc3\x28";
  refused(notUtf8, "not valid UTF-8");
  NewCodeVersion overlong = newVersion('a');
  overlong.note = "\xc0\xaf";
  refused(overlong, "not valid UTF-8");
  NewCodeVersion cut = newVersion('a');
  cut.note = "ok \xe2\x82";
  refused(cut, "not valid UTF-8");
  NewCodeVersion longNote = newVersion('a');
  longNote.note.assign(kMaxNoteLength + 1, 'n');
  refused(longNote, "longer than");

  CHECK(snapshot() == before);

  // The largest allowed size and non-ASCII text are fine.
  NewCodeVersion largest = newVersion('b');
  largest.content.assign(static_cast<std::size_t>(kMaxStoredCodeSize), 0xAA);
  largest.size = kMaxStoredCodeSize;
  largest.note = "größer — 最大";
  REQUIRE(code.addVersion(largest).ok());
  CHECK((*code.versionContent(sha('b'))).size() == static_cast<std::size_t>(kMaxStoredCodeSize));
}

// ---- Groups and device moves

TEST_CASE_METHOD(Fixture, "groups are created once and listed with their device counts") {
  REQUIRE(code.createGroup("kitchen", 100, "impctl:alice").ok());
  CHECK((*audit.recent(1))[0].action == "group.create");
  Status again = code.createGroup("kitchen", 200, "impctl:alice");
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == ErrorCode::kAlreadyExists);
  CHECK_THAT(again.error().message, Catch::Contains("already exists"));

  Status bad = code.createGroup("a/b", 100, "impctl:alice");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == ErrorCode::kInvalidName);

  // Enrolment creates groups too, in the same table.
  REQUIRE(devices.enroll(device("imp-1", "kitchen"), "test").ok());
  REQUIRE(devices.enroll(device("imp-2", "kitchen"), "test").ok());
  REQUIRE(devices.enroll(device("imp-3", "garden"), "test").ok());
  REQUIRE(devices.revoke("imp-2", 900, "test").ok());
  REQUIRE(code.createGroup("empty", 300, "impctl:alice").ok());

  CHECK(*code.groupExists("garden"));
  CHECK_FALSE(*code.groupExists("attic"));
  Result<std::vector<GroupInfo>> groups = code.listGroups();
  REQUIRE(groups.ok());
  REQUIRE(groups->size() == 3);
  CHECK((*groups)[0] == GroupInfo{"empty", 300, 0, 0, std::nullopt, 1});
  CHECK((*groups)[1] == GroupInfo{"garden", 500, 1, 1, std::nullopt, 1});
  CHECK((*groups)[2] == GroupInfo{"kitchen", 100, 2, 1, std::nullopt, 1});

  CHECK(*code.activeDevices("kitchen") == std::vector<std::string>{"imp-1"});
  Result<std::vector<std::string>> none = code.activeDevices("attic");
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().code == ErrorCode::kNotFound);
}

TEST_CASE_METHOD(Fixture, "a device moves only between existing groups, with an audit row") {
  REQUIRE(devices.enroll(device("imp-1", "kitchen"), "test").ok());
  REQUIRE(code.createGroup("garden", 100, "test").ok());

  Result<std::string> from = code.moveDevice("imp-1", "garden", 5000, "impctl:bob");
  REQUIRE(from.ok());
  CHECK(*from == "kitchen");
  CHECK((*devices.find("imp-1"))->group == "garden");
  AuditEntry entry = (*audit.recent(1))[0];
  CHECK(entry.action == "device.move");
  CHECK(entry.actor == "impctl:bob");
  CHECK(entry.atMs == 5000);
  CHECK(nlohmann::json::parse(entry.detail) ==
        nlohmann::json{{"id", "imp-1"}, {"from", "kitchen"}, {"to", "garden"}});

  const auto before = snapshot();
  Result<std::string> same = code.moveDevice("imp-1", "garden", 6000, "impctl:bob");
  REQUIRE(same.ok());
  CHECK(*same == "garden");
  CHECK(snapshot() == before);

  Result<std::string> noGroup = code.moveDevice("imp-1", "attic", 6000, "impctl:bob");
  REQUIRE_FALSE(noGroup.ok());
  CHECK(noGroup.error().code == ErrorCode::kNotFound);
  CHECK_THAT(noGroup.error().message, Catch::Contains("group 'attic' does not exist"));
  Result<std::string> noDevice = code.moveDevice("imp-9", "garden", 6000, "impctl:bob");
  REQUIRE_FALSE(noDevice.ok());
  CHECK(noDevice.error().code == ErrorCode::kNotFound);
  CHECK_THAT(noDevice.error().message, Catch::Contains("'imp-9' is not enrolled"));
  Result<std::string> badName = code.moveDevice("imp-1", "a+b", 6000, "impctl:bob");
  REQUIRE_FALSE(badName.ok());
  CHECK(badName.error().code == ErrorCode::kInvalidName);
  CHECK((*devices.find("imp-1"))->group == "garden");
  CHECK(snapshot() == before);
}

// ---- Deployments

TEST_CASE_METHOD(Fixture, "deployments are numbered per group and read back as written") {
  standardSetup();
  REQUIRE(code.createGroup("other", 100, "test").ok());

  Result<std::int64_t> first = code.createDeployment("g", sha('1'), policy({10, 50, 100}, 8, 5.5),
                                                     false, "alice", "first one", 2000);
  REQUIRE(first.ok());
  CHECK(*first == 1);
  CHECK(deploy('2') == 2);
  CHECK(deploy('1', false, "other") == 1);
  CHECK(deploy('3') == 3);

  Result<std::optional<Deployment>> d1 = code.deployment("g", 1);
  REQUIRE(d1.ok());
  REQUIRE(d1->has_value());
  const Deployment expected{"g",     1,          sha('1'), 6, policy({10, 50, 100}, 8, 5.5),
                            false,   false,      false,    0, 2000,
                            "alice", "first one"};
  CHECK(**d1 == expected);
  CHECK((*code.latestDeployment("g"))->number == 3);
  CHECK((*code.latestDeployment("other"))->codeSha == sha('1'));
  CHECK((*code.deploymentBefore("g", 3))->number == 2);
  CHECK_FALSE(code.deploymentBefore("g", 1)->has_value());
  CHECK_FALSE(code.deployment("g", 4)->has_value());

  Result<std::vector<Deployment>> history = code.listDeployments("g");
  REQUIRE(history.ok());
  REQUIRE(history->size() == 3);
  CHECK((*history)[0] == expected);
  CHECK((*history)[2].codeSha == sha('3'));

  AuditEntry entry = (*audit.recent(1))[0];
  CHECK(entry.action == "code.deploy");
  CHECK(nlohmann::json::parse(entry.detail)["deployment"] == 3);

  // A group without deployments exists but has no latest; an unknown group is an error.
  REQUIRE(code.createGroup("fresh", 100, "test").ok());
  Result<std::optional<Deployment>> none = code.latestDeployment("fresh");
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  Result<std::optional<Deployment>> unknown = code.latestDeployment("attic");
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().code == ErrorCode::kNotFound);
  Result<std::vector<Deployment>> unknownHistory = code.listDeployments("attic");
  REQUIRE_FALSE(unknownHistory.ok());
  CHECK(unknownHistory.error().code == ErrorCode::kNotFound);
}

TEST_CASE_METHOD(Fixture, "a deleted deployment's number is never given out again") {
  standardSetup();
  CHECK(deploy('1') == 1);
  CHECK(deploy('2') == 2);
  CHECK(deploy('3') == 3);
  REQUIRE(code.deleteDeployment("g", 2, 4000, "alice").ok());
  CHECK((*audit.recent(1))[0].action == "code.delete");
  CHECK_FALSE(code.deployment("g", 2)->has_value());
  CHECK(deploy('2') == 4);
  // Deleting the first one still leaves the counter where it was.
  REQUIRE(code.deleteDeployment("g", 1, 4000, "alice").ok());
  CHECK(deploy('1') == 5);
  CHECK((*code.group("g"))->nextDeployment == 6);
  // The API never deletes the latest, so max(number) + 1 would pass the checks above. The
  // number comes from the group's counter, so even the latest row going (by hand) frees nothing.
  REQUIRE(db.exec("DELETE FROM deployments WHERE group_name = 'g' AND number = 5").ok());
  CHECK(deploy('3') == 6);

  Status missing = code.deleteDeployment("g", 2, 4000, "alice");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == ErrorCode::kNotFound);
  CHECK_THAT(missing.error().message, Catch::Contains("group 'g' has no deployment 2"));
}

TEST_CASE_METHOD(Fixture,
                 "a deployment to a missing group or version, or with a bad policy, is refused") {
  standardSetup();
  CHECK(deploy('1') == 1);
  const auto before = snapshot();
  auto refused = [&](std::string_view group, std::string_view code_, const RolloutPolicy& p,
                     ErrorCode expected, const std::string& text) {
    Result<std::int64_t> r = code.createDeployment(group, code_, p, true, "alice", "", 2000);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == expected);
    CHECK_THAT(r.error().message, Catch::Contains(text));
  };
  refused("attic", sha('2'), policy({100}), ErrorCode::kNotFound, "group 'attic' does not exist");
  refused("g", sha('9'), policy({100}), ErrorCode::kNotFound, "no version " + sha('9'));
  refused("g", "abc", policy({100}), ErrorCode::kInvalidInput, "is not a SHA-256");
  refused("a/b", sha('2'), policy({100}), ErrorCode::kInvalidName, "invalid group name");
  refused("g", sha('2'), policy({}), ErrorCode::kInvalidInput, "at least one stage");
  refused("g", sha('2'), policy({10, 50}), ErrorCode::kInvalidInput, "last stage must be 100%");
  refused("g", sha('2'), policy({50, 10, 100}), ErrorCode::kInvalidInput, "increase strictly");
  refused("g", sha('2'), policy({10, 10, 100}), ErrorCode::kInvalidInput, "increase strictly");
  refused("g", sha('2'), policy({0, 100}), ErrorCode::kInvalidInput, "outside 1..100");
  refused("g", sha('2'), policy({10, 101}), ErrorCode::kInvalidInput, "outside 1..100");
  refused("g", sha('2'), policy({-5, 100}), ErrorCode::kInvalidInput, "outside 1..100");
  refused("g", sha('2'), policy({100}, -1), ErrorCode::kInvalidInput, "max concurrent");
  refused("g", sha('2'), policy({100}, 0, -0.5), ErrorCode::kInvalidInput, "halt threshold");
  refused("g", sha('2'), policy({100}, 0, 100.5), ErrorCode::kInvalidInput, "halt threshold");
  refused("g", sha('2'), policy({100}, 0, std::nan("")), ErrorCode::kInvalidInput,
          "halt threshold");
  std::vector<int> tooMany;
  for (int i = 0; i <= static_cast<int>(kMaxStages); ++i) {
    tooMany.push_back(i);
  }
  refused("g", sha('2'), policy(tooMany), ErrorCode::kInvalidInput, "at most 100 stages");
  CHECK(snapshot() == before);
  CHECK((*code.group("g"))->nextDeployment == 2);
  // The edges are valid: a 1% stage, halting at 0% or never (100%).
  CHECK(code.createDeployment("g", sha('2'), policy({1, 100}, 0, 0), false, "a", "", 1).ok());
  CHECK(code.createDeployment("g", sha('3'), policy({100}, 1, 100), false, "a", "", 1).ok());
}

TEST_CASE_METHOD(Fixture, "min_supported only moves forward and bounds the supported codes") {
  standardSetup();
  CHECK(code.supportedCodes("g")->empty());
  CHECK(deploy('1') == 1);
  CHECK(deploy('2') == 2);
  CHECK(deploy('1') == 3);
  // None marked: every deployment's code, the live one last.
  CHECK(*code.supportedCodes("g") == std::vector<std::string>{sha('2'), sha('1')});
  CHECK_FALSE((*code.group("g"))->minSupported.has_value());

  CHECK(deploy('2', true) == 4);
  CHECK((*code.group("g"))->minSupported == 4);
  CHECK((*code.deployment("g", 4))->minSupported);
  CHECK(*code.supportedCodes("g") == std::vector<std::string>{sha('2')});

  // A later deployment without the mark keeps it; a later one with the mark raises it.
  CHECK(deploy('3') == 5);
  CHECK((*code.group("g"))->minSupported == 4);
  CHECK(*code.supportedCodes("g") == std::vector<std::string>{sha('2'), sha('3')});
  CHECK(deploy('1', true) == 6);
  CHECK((*code.group("g"))->minSupported == 6);
  CHECK(*code.supportedCodes("g") == std::vector<std::string>{sha('1')});

  // Deleting the marked deployment does not move the mark back.
  CHECK(deploy('3') == 7);
  REQUIRE(code.deleteDeployment("g", 6, 1, "alice").ok());
  CHECK((*code.group("g"))->minSupported == 6);
  CHECK(*code.supportedCodes("g") == std::vector<std::string>{sha('3')});

  Result<std::vector<std::string>> unknown = code.supportedCodes("attic");
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().code == ErrorCode::kNotFound);
}

TEST_CASE_METHOD(Fixture, "pause, resume and flag change one deployment and are audited") {
  standardSetup();
  CHECK(deploy('1') == 1);
  CHECK(deploy('2') == 2);

  Result<Deployment> paused = code.setPaused("g", 2, true, 5000, "bob");
  REQUIRE(paused.ok());
  CHECK(paused->paused);
  CHECK((*code.deployment("g", 2))->paused);
  CHECK_FALSE((*code.deployment("g", 1))->paused);
  AuditEntry entry = (*audit.recent(1))[0];
  CHECK(entry.action == "code.pause");
  CHECK(entry.actor == "bob");

  Result<Deployment> resumed = code.bumpResume("g", 2, 6000, "bob");
  REQUIRE(resumed.ok());
  CHECK(resumed->resume == 1);
  CHECK_FALSE(resumed->paused);
  CHECK((*code.bumpResume("g", 2, 6000, "bob")).resume == 2);
  CHECK((*audit.recent(1))[0].action == "code.resume");

  Result<Deployment> flagged = code.setFlagged("g", 1, true, 7000, "bob");
  REQUIRE(flagged.ok());
  CHECK(flagged->flagged);
  CHECK((*audit.recent(1))[0].action == "code.flag");

  for (auto r :
       {code.setPaused("g", 9, true, 1, "bob"), code.bumpResume("g", 9, 1, "bob"),
        code.setFlagged("g", 9, true, 1, "bob"), code.setPaused("attic", 1, true, 1, "bob")}) {
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kNotFound);
  }
}

TEST_CASE_METHOD(Fixture, "flagged deployments and the live target cannot be deleted") {
  standardSetup();
  CHECK(deploy('1') == 1);
  CHECK(deploy('2') == 2);
  REQUIRE(code.setFlagged("g", 1, true, 1, "alice").ok());
  const auto before = snapshot();

  Status flagged = code.deleteDeployment("g", 1, 1, "alice");
  REQUIRE_FALSE(flagged.ok());
  CHECK(flagged.error().code == ErrorCode::kRefused);
  CHECK_THAT(flagged.error().message, Catch::Contains("is flagged and cannot be deleted"));

  Status live = code.deleteDeployment("g", 2, 1, "alice");
  REQUIRE_FALSE(live.ok());
  CHECK(live.error().code == ErrorCode::kRefused);
  CHECK_THAT(live.error().message, Catch::Contains("live target"));
  CHECK(snapshot() == before);

  REQUIRE(code.setFlagged("g", 1, false, 1, "alice").ok());
  CHECK(code.deleteDeployment("g", 1, 1, "alice").ok());
}

// ---- Rollback

TEST_CASE_METHOD(Fixture, "a rollback finds the last earlier deployment with other code") {
  standardSetup();
  Result<Deployment> nothing = code.rollbackTarget("g", std::nullopt);
  REQUIRE_FALSE(nothing.ok());
  CHECK(nothing.error().code == ErrorCode::kRefused);
  CHECK_THAT(nothing.error().message, Catch::Contains("no deployments"));

  CHECK(deploy('1') == 1);
  Result<Deployment> first = code.rollbackTarget("g", std::nullopt);
  REQUIRE_FALSE(first.ok());
  CHECK(first.error().code == ErrorCode::kRefused);
  CHECK_THAT(first.error().message, Catch::Contains("a rollback past the first deployment"));

  CHECK(deploy('2') == 2);
  CHECK(code.rollbackTarget("g", std::nullopt)->number == 1);
  CHECK(deploy('2') == 3);  // a redeploy of the same code is skipped over
  CHECK(code.rollbackTarget("g", std::nullopt)->number == 1);
  CHECK(deploy('1') == 4);  // the rollback itself: rolling back again goes to 2's code
  Result<Deployment> back = code.rollbackTarget("g", std::nullopt);
  REQUIRE(back.ok());
  CHECK(back->number == 3);
  CHECK(back->codeSha == sha('2'));

  CHECK(deploy('3') == 5);
  CHECK(code.rollbackTarget("g", 3)->codeSha == sha('2'));
  CHECK(code.rollbackTarget("g", 1)->codeSha == sha('1'));

  auto refused = [&](std::int64_t to, ErrorCode expected, const std::string& text) {
    Result<Deployment> r = code.rollbackTarget("g", to);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == expected);
    CHECK_THAT(r.error().message, Catch::Contains(text));
  };
  refused(5, ErrorCode::kRefused, "not earlier than");
  refused(9, ErrorCode::kRefused, "not earlier than");
  refused(0, ErrorCode::kRefused, "a rollback past the first deployment");
  refused(-1, ErrorCode::kRefused, "a rollback past the first deployment");
  REQUIRE(code.deleteDeployment("g", 2, 1, "alice").ok());
  refused(2, ErrorCode::kNotFound, "group 'g' has no deployment 2");
  REQUIRE(code.deleteDeployment("g", 1, 1, "alice").ok());
  refused(1, ErrorCode::kRefused, "a rollback past the first deployment");
  CHECK(deploy('3') == 6);
  refused(5, ErrorCode::kRefused, "already runs");

  Result<Deployment> unknown = code.rollbackTarget("attic", std::nullopt);
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().code == ErrorCode::kNotFound);
}

// ---- Push history

TEST_CASE_METHOD(Fixture, "push states are appended only when they change") {
  standardSetup();
  CHECK(deploy('1') == 1);
  CHECK(deploy('2') == 2);

  CHECK(*code.recordPushState(push("imp-1", 2, '2', "offered", "", 100)));
  CHECK_FALSE(*code.recordPushState(push("imp-1", 2, '2', "offered", "", 150)));  // a repeat
  CHECK(*code.recordPushState(push("imp-1", 2, '2', "transferring", "", 200)));
  CHECK(*code.recordPushState(push("imp-1", 2, '2', "failed", "corrupt chunk", 300)));
  CHECK_FALSE(*code.recordPushState(push("imp-1", 2, '2', "failed", "corrupt chunk", 300)));
  CHECK(*code.recordPushState(push("imp-1", 2, '2', "failed", "bad signature", 400)));
  // The same state for another deployment is new.
  CHECK(*code.recordPushState(push("imp-1", 1, '1', "failed", "bad signature", 50)));
  CHECK(*code.recordPushState(push("imp-2", 2, '2', "current", "", 500)));

  Result<std::vector<PushState>> history = code.pushHistory("imp-1");
  REQUIRE(history.ok());
  REQUIRE(history->size() == 5);
  CHECK((*history)[0] == push("imp-1", 2, '2', "offered", "", 100));
  CHECK((*history)[2] == push("imp-1", 2, '2', "failed", "corrupt chunk", 300));
  CHECK((*history)[4].deployment == 1);
  CHECK(code.pushHistory("imp-9")->empty());

  Result<std::vector<PushState>> latest = code.latestPushStates("g");
  REQUIRE(latest.ok());
  REQUIRE(latest->size() == 2);
  CHECK((*latest)[0] == push("imp-1", 1, '1', "failed", "bad signature", 50));
  CHECK((*latest)[1] == push("imp-2", 2, '2', "current", "", 500));

  // A device moved out of the group no longer counts in it.
  REQUIRE(code.createGroup("h", 1, "test").ok());
  REQUIRE(code.moveDevice("imp-2", "h", 1, "test").ok());
  Result<std::vector<PushState>> after = code.latestPushStates("g");
  REQUIRE(after->size() == 1);
  CHECK((*after)[0].device == "imp-1");
  CHECK(code.latestPushStates("h")->empty());
  Result<std::vector<PushState>> unknown = code.latestPushStates("attic");
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().code == ErrorCode::kNotFound);
}

TEST_CASE_METHOD(Fixture, "a push state nobody deployed, or from an unknown device, is refused") {
  standardSetup();
  CHECK(deploy('1') == 1);
  REQUIRE(code.recordPushState(push("imp-1", 1, '1', "offered")).ok());
  const auto before = snapshot();
  auto refused = [&](PushState p, ErrorCode expected, const std::string& text) {
    Result<bool> r = code.recordPushState(p);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == expected);
    CHECK_THAT(r.error().message, Catch::Contains(text));
  };
  // A hash nobody deployed: neither this deployment's code nor any stored one.
  refused(push("imp-1", 1, '2', "installed"), ErrorCode::kInvalidInput,
          "which deploys " + sha('1'));
  refused(push("imp-1", 1, 'f', "installed"), ErrorCode::kInvalidInput, "reported code");
  refused(push("imp-1", 7, '1', "installed"), ErrorCode::kNotFound, "has no deployment 7");
  refused(push("imp-9", 1, '1', "installed"), ErrorCode::kNotFound, "'imp-9' is not enrolled");
  refused(push("imp-1", 1, '1', "exploded"), ErrorCode::kInvalidInput, "unknown push state");
  refused(push("imp-1", 1, '1', ""), ErrorCode::kInvalidInput, "unknown push state");
  PushState badSha = push("imp-1", 1, '1', "installed");
  badSha.codeSha = "ABC";
  refused(badSha, ErrorCode::kInvalidInput, "is not a SHA-256");
  PushState badDevice = push("imp/1", 1, '1', "installed");
  refused(badDevice, ErrorCode::kInvalidName, "invalid device id");
  PushState badNode = push("imp-1", 1, '1', "installed");
  badNode.node = "node/+";
  refused(badNode, ErrorCode::kInvalidName, "invalid node name");
  PushState badGroup = push("imp-1", 1, '1', "installed");
  badGroup.group = "#";
  refused(badGroup, ErrorCode::kInvalidName, "invalid group name");
  PushState otherGroup = push("imp-1", 1, '1', "installed");
  otherGroup.group = "attic";
  refused(otherGroup, ErrorCode::kNotFound, "group 'attic' has no deployment 1");
  PushState badReason = push("imp-1", 1, '1', "failed", "\xff\xfe");
  refused(badReason, ErrorCode::kInvalidInput, "reason");
  PushState longReason = push("imp-1", 1, '1', "failed", std::string(kMaxReasonLength + 1, 'r'));
  refused(longReason, ErrorCode::kInvalidInput, "reason");
  CHECK(snapshot() == before);
}

// ---- Two writers

TEST_CASE("two connections deploying to one group at once get distinct numbers") {
  TempDir dir;
  const auto path = dir.path() / "impgate.db";
  {
    Database db = std::move(Database::open(path)).value();
    CodeRegistry code = std::move(CodeRegistry::open(db)).value();
    REQUIRE(code.addVersion(newVersion('1')).ok());
    REQUIRE(code.createGroup("g", 1, "test").ok());
  }
  constexpr int kEach = 40;
  std::vector<std::int64_t> numbers[2];
  std::vector<std::string> errors[2];
  auto writer = [&](int w) {
    // Each thread its own connection, as two impctl processes would have.
    Result<Database> db = Database::open(path);
    if (!db) {
      errors[w].push_back(db.error().message);
      return;
    }
    Result<CodeRegistry> code = CodeRegistry::open(*db);
    if (!code) {
      errors[w].push_back(code.error().message);
      return;
    }
    for (int i = 0; i < kEach; ++i) {
      Result<std::int64_t> n =
          code->createDeployment("g", sha('1'), RolloutPolicy{}, i % 7 == 0, "w", "", i);
      if (n) {
        numbers[w].push_back(*n);
      } else {
        errors[w].push_back(n.error().message);
      }
    }
  };
  std::thread a(writer, 0);
  std::thread b(writer, 1);
  a.join();
  b.join();
  CHECK(errors[0] == std::vector<std::string>{});
  CHECK(errors[1] == std::vector<std::string>{});
  std::set<std::int64_t> all(numbers[0].begin(), numbers[0].end());
  all.insert(numbers[1].begin(), numbers[1].end());
  CHECK(all.size() == numbers[0].size() + numbers[1].size());
  CHECK(all.size() == 2 * kEach);
  CHECK(*all.begin() == 1);
  CHECK(*all.rbegin() == 2 * kEach);

  Database db = std::move(Database::open(path)).value();
  CodeRegistry code = std::move(CodeRegistry::open(db)).value();
  CHECK(code.listDeployments("g")->size() == 2 * kEach);
  CHECK((*code.group("g"))->nextDeployment == 2 * kEach + 1);
}

TEST_CASE("two processes deploying to one group at once get distinct numbers") {
  TempDir dir;
  const auto path = dir.path() / "impgate.db";
  {
    Database db = std::move(Database::open(path)).value();
    CodeRegistry code = std::move(CodeRegistry::open(db)).value();
    REQUIRE(code.addVersion(newVersion('1')).ok());
    REQUIRE(code.createGroup("g", 1, "test").ok());
  }
  constexpr int kEach = 30;
  // Each process opens its own connection after the fork, as two impctl runs would; the child
  // reports the numbers it got through a pipe, -1 for a failed deploy.
  auto deployAll = [&](std::vector<std::int64_t>& got) {
    Result<Database> db = Database::open(path);
    if (!db) {
      got.assign(kEach, -1);
      return;
    }
    Result<CodeRegistry> code = CodeRegistry::open(*db);
    for (int i = 0; i < kEach; ++i) {
      Result<std::int64_t> n =
          code ? code->createDeployment("g", sha('1'), RolloutPolicy{}, false, "p", "", i)
               : Result<std::int64_t>(code.error());
      got.push_back(n ? *n : -1);
    }
  };
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(fds[0]);
    std::vector<std::int64_t> got;
    deployAll(got);
    const auto size = static_cast<ssize_t>(got.size() * sizeof(std::int64_t));
    ::_exit(::write(fds[1], got.data(), static_cast<std::size_t>(size)) == size ? 0 : 1);
  }
  ::close(fds[1]);
  std::vector<std::int64_t> mine;
  deployAll(mine);
  std::vector<std::int64_t> theirs(kEach, 0);
  std::size_t want = theirs.size() * sizeof(std::int64_t);
  std::size_t have = 0;
  while (have < want) {
    ssize_t n = ::read(fds[0], reinterpret_cast<char*>(theirs.data()) + have, want - have);
    if (n <= 0) {
      break;
    }
    have += static_cast<std::size_t>(n);
  }
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  REQUIRE(have == want);

  std::set<std::int64_t> all(mine.begin(), mine.end());
  all.insert(theirs.begin(), theirs.end());
  CHECK_FALSE(all.count(-1));
  CHECK(all.size() == 2 * kEach);
  CHECK(*all.begin() == 1);
  CHECK(*all.rbegin() == 2 * kEach);
}

TEST_CASE("a deploy that cannot get the write lock fails cleanly and writes nothing") {
  TempDir dir;
  const auto path = dir.path() / "impgate.db";
  Database db = std::move(Database::open(path)).value();
  CodeRegistry code = std::move(CodeRegistry::open(db)).value();
  REQUIRE(code.addVersion(newVersion('1')).ok());
  REQUIRE(code.createGroup("g", 1, "test").ok());

  // Another process holds a write transaction for longer than we wait.
  Database other = std::move(Database::open(path)).value();
  Result<Transaction> held = Transaction::begin(other);
  REQUIRE(held.ok());
  sqlite3_busy_timeout(db.handle(), 50);

  Result<std::int64_t> n = code.createDeployment("g", sha('1'), RolloutPolicy{}, true, "a", "", 1);
  REQUIRE_FALSE(n.ok());
  CHECK(n.error().code == ErrorCode::kSqlite);
  CHECK_THAT(n.error().message, Catch::Contains("locked"));

  REQUIRE(held->commit().ok());
  CHECK(code.listDeployments("g")->empty());
  CHECK((*code.group("g"))->nextDeployment == 1);
  CHECK_FALSE((*code.group("g"))->minSupported.has_value());
  CHECK(*code.createDeployment("g", sha('1'), RolloutPolicy{}, true, "a", "", 1) == 1);
}

// ---- Migration from schema version 1

TEST_CASE("a database written by the schema-1 release migrates without losing a row") {
  TempDir dir;
  const auto path = dir.path() / "impgate.db";
  std::filesystem::copy_file(
      std::filesystem::path(IMPGATE_SOURCE_DIR) / "tests" / "data" / "impgate-schema1.db", path);
  {
    // Read the file as it is, before any of our code touches it.
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &raw) == SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(raw, "PRAGMA user_version", -1, &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    CHECK(sqlite3_column_int(s, 0) == 1);
    sqlite3_finalize(s);
    sqlite3_close(raw);
  }

  Result<Database> db = Database::open(path, OpenMode::kExisting);
  REQUIRE(db.ok());
  CHECK(*db->schemaVersion() == latestSchemaVersion());
  CHECK(latestSchemaVersion() == 2);

  // Every device, as the old impctl wrote it (serials and times from `impctl device list`).
  DeviceRegistry devices = std::move(DeviceRegistry::open(*db)).value();
  Result<std::vector<DeviceRecord>> all = devices.list();
  REQUIRE(all.ok());
  const std::vector<DeviceRecord> expected = {
      {"imp-1", "kitchen", "3A7685C5A052A18E7BB03A537ED029", 2111462138000, 1796102139232,
       std::nullopt},
      {"imp-2", "kitchen", "0AAA2ACAFD2E4271511A217E2ACF0BD5", 2111462138000, 1796102139027,
       1796102200000},
      {"imp-3", "garden", "4ACEA081B4B43FDF9396E5978837C67A", 2111462138000, 1796102139080,
       std::nullopt},
      {"sensor-00001", "default", "0D364DB1A5010A1EE4DA12F792B86723", 2111462138000, 1796102139136,
       std::nullopt},
      {"sensor-00002", "default", "1BCCDFAA7925D52D54E69F0E306D5CDE", 2111462138000, 1796102139136,
       std::nullopt},
      {"sensor-00003", "default", "457636B4EEEC0AF0959B2F06B862094F", 2111462138000, 1796102139136,
       std::nullopt},
  };
  CHECK(*all == expected);
  CHECK_FALSE(*devices.isActive("imp-2"));

  AuditLog audit = std::move(AuditLog::open(*db)).value();
  Result<std::vector<AuditEntry>> entries = audit.recent(100);
  REQUIRE(entries.ok());
  REQUIRE(entries->size() == 9);
  CHECK((*entries)[0].action == "device.revoke");
  CHECK((*entries)[8].action == "ca.init");
  CHECK((*entries)[8].atMs == 1796102138844);

  // The groups enrolment made, with their counts and fresh deployment counters.
  CodeRegistry code = std::move(CodeRegistry::open(*db)).value();
  Result<std::vector<GroupInfo>> groups = code.listGroups();
  REQUIRE(groups.ok());
  CHECK(*groups == std::vector<GroupInfo>{
                       {"default", 1796102139136, 3, 3, std::nullopt, 1},
                       {"garden", 1796102139080, 1, 1, std::nullopt, 1},
                       {"kitchen", 1796102138958, 2, 1, std::nullopt, 1},
                   });

  // The new tables work on the old rows.
  REQUIRE(code.addVersion(newVersion('1')).ok());
  CHECK(*code.createDeployment("kitchen", sha('1'), RolloutPolicy{{10, 100}, 2, 5}, true, "a", "",
                               1) == 1);
  CHECK(*code.recordPushState(
      PushState{"imp-1", "kitchen", 1, sha('1'), "installed", "", 2, "node-a"}));
  CHECK(code.latestPushStates("kitchen")->size() == 1);
  REQUIRE(code.moveDevice("imp-3", "kitchen", 3, "a").ok());
  CHECK(*code.activeDevices("kitchen") == std::vector<std::string>{"imp-1", "imp-3"});
}

TEST_CASE("a schema-1 file reopened after migrating stays at schema 2 with its new rows") {
  TempDir dir;
  const auto path = dir.path() / "impgate.db";
  std::filesystem::copy_file(
      std::filesystem::path(IMPGATE_SOURCE_DIR) / "tests" / "data" / "impgate-schema1.db", path);
  {
    Database db = std::move(Database::open(path)).value();
    CodeRegistry code = std::move(CodeRegistry::open(db)).value();
    REQUIRE(code.addVersion(newVersion('1')).ok());
    REQUIRE(code.createDeployment("garden", sha('1'), RolloutPolicy{}, false, "a", "", 1).ok());
  }
  Database db = std::move(Database::open(path)).value();
  CHECK(*db.schemaVersion() == 2);
  CodeRegistry code = std::move(CodeRegistry::open(db)).value();
  CHECK((*code.latestDeployment("garden"))->codeSha == sha('1'));
  CHECK(code.listVersions()->size() == 1);
}
