#include "storage/device_registry.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "storage/audit_log.h"
#include "tests/support/testbed.h"

using namespace impgate::storage;
using impgate::testing::TempDir;

namespace {

DeviceRecord device(std::string id, std::string group = "default", std::int64_t at = 1000) {
  return DeviceRecord{std::move(id), std::move(group), "0A1B2C", at + 86'400'000, at, std::nullopt};
}

// A migrated database in a temp dir, with a registry and audit log on it.
struct Fixture {
  TempDir dir;
  Database db = std::move(Database::open(dir.path() / "impgate.db")).value();
  DeviceRegistry registry = std::move(DeviceRegistry::open(db)).value();
  AuditLog audit = std::move(AuditLog::open(db)).value();

  std::int64_t count(const char* sql) {
    Result<Statement> s = db.prepare(sql);
    REQUIRE(s.ok());
    REQUIRE(*s->step());
    return s->columnInt(0);
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "enrolled devices can be found and are listed in id order") {
  REQUIRE(registry.enroll(device("imp-2", "kitchen"), "test").ok());
  REQUIRE(registry.enroll(device("imp-1"), "test").ok());
  REQUIRE(registry.enroll(device("imp-10"), "test").ok());

  Result<std::optional<DeviceRecord>> found = registry.find("imp-2");
  REQUIRE(found.ok());
  REQUIRE(found->has_value());
  CHECK(**found == device("imp-2", "kitchen"));

  Result<std::optional<DeviceRecord>> missing = registry.find("imp-3");
  REQUIRE(missing.ok());
  CHECK_FALSE(missing->has_value());

  Result<std::vector<DeviceRecord>> all = registry.list();
  REQUIRE(all.ok());
  REQUIRE(all->size() == 3);
  CHECK((*all)[0].id == "imp-1");
  CHECK((*all)[1].id == "imp-10");
  CHECK((*all)[2].id == "imp-2");
  CHECK(count("SELECT count(*) FROM device_groups") == 2);
}

TEST_CASE_METHOD(Fixture, "a record without certificate expiry round-trips as nullopt") {
  DeviceRecord d = device("imp-1");
  d.certNotAfterMs.reset();
  REQUIRE(registry.enroll(d, "test").ok());
  CHECK(**registry.find("imp-1") == d);
}

TEST_CASE_METHOD(Fixture, "enrolling an enrolled id is refused unless replacing") {
  REQUIRE(registry.enroll(device("imp-1"), "test").ok());

  Status again = registry.enroll(device("imp-1"), "test");
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == ErrorCode::kAlreadyEnrolled);
  CHECK_THAT(again.error().message, Catch::Contains("already enrolled"));

  DeviceRecord reissued = device("imp-1", "default", 5000);
  reissued.certSerial = "FFEE";
  REQUIRE(registry.enroll(reissued, "test", OnExisting::kReplace).ok());
  CHECK(**registry.find("imp-1") == reissued);
  CHECK(count("SELECT count(*) FROM devices") == 1);
}

TEST_CASE_METHOD(Fixture, "a refused enrolment leaves no partial rows behind") {
  REQUIRE(registry.enroll(device("imp-1", "first"), "test").ok());
  const std::int64_t auditBefore = count("SELECT count(*) FROM audit_log");

  // The new group is inserted before the duplicate is detected; the rollback must remove it.
  Status again = registry.enroll(device("imp-1", "second"), "test");
  REQUIRE_FALSE(again.ok());
  CHECK(count("SELECT count(*) FROM device_groups WHERE name = 'second'") == 0);
  CHECK(count("SELECT count(*) FROM audit_log") == auditBefore);
  CHECK((*registry.find("imp-1"))->group == "first");
}

TEST_CASE_METHOD(Fixture, "invalid device ids and group names are refused") {
  for (const char* bad : {"a/b", "", "+", "#", ".hidden", "with space"}) {
    Status s = registry.enroll(device(bad), "test");
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code == ErrorCode::kInvalidName);
  }
  Status badGroup = registry.enroll(device("imp-1", "a/b"), "test");
  REQUIRE_FALSE(badGroup.ok());
  CHECK(badGroup.error().code == ErrorCode::kInvalidName);
  CHECK(count("SELECT count(*) FROM devices") == 0);
  CHECK(count("SELECT count(*) FROM device_groups") == 0);
}

TEST_CASE_METHOD(Fixture, "every enrolment writes one audit row") {
  REQUIRE(registry.enroll(device("imp-1", "g", 1234), "impctl:alice").ok());
  REQUIRE(registry.enroll(device("imp-1", "g", 2345), "impctl:bob", OnExisting::kReplace).ok());

  Result<std::vector<AuditEntry>> entries = audit.recent(10);
  REQUIRE(entries.ok());
  REQUIRE(entries->size() == 2);
  const AuditEntry& reissue = (*entries)[0];
  const AuditEntry& enroll = (*entries)[1];
  CHECK(enroll.atMs == 1234);
  CHECK(enroll.actor == "impctl:alice");
  CHECK(enroll.action == "device.enroll");
  auto detail = nlohmann::json::parse(enroll.detail);
  CHECK(detail["id"] == "imp-1");
  CHECK(detail["group"] == "g");
  CHECK(detail["serial"] == "0A1B2C");
  CHECK(reissue.action == "device.reissue");
  CHECK(reissue.actor == "impctl:bob");
}

TEST_CASE_METHOD(Fixture, "revoked devices are not active") {
  REQUIRE(registry.enroll(device("imp-1"), "test").ok());
  CHECK(*registry.isActive("imp-1"));
  CHECK_FALSE(*registry.isActive("imp-unknown"));

  REQUIRE(registry.revoke("imp-1", 9000, "test").ok());
  CHECK_FALSE(*registry.isActive("imp-1"));
  CHECK((*registry.find("imp-1"))->revokedAtMs == 9000);
  REQUIRE(registry.revoke("imp-1", 9999, "test").ok());  // no-op, keeps the first time
  CHECK((*registry.find("imp-1"))->revokedAtMs == 9000);
  CHECK((*audit.recent(1))[0].action == "device.revoke");

  Status unknown = registry.revoke("imp-unknown", 9000, "test");
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().code == ErrorCode::kNotFound);

  // Re-issuing a revoked device's credentials makes it active again.
  REQUIRE(registry.enroll(device("imp-1"), "test", OnExisting::kReplace).ok());
  CHECK(*registry.isActive("imp-1"));
}

TEST_CASE("the registry persists across reopen") {
  TempDir dir;
  {
    Database db = std::move(Database::open(dir.path() / "impgate.db")).value();
    DeviceRegistry registry = std::move(DeviceRegistry::open(db)).value();
    REQUIRE(registry.enroll(device("imp-1"), "test").ok());
  }
  Database db = std::move(Database::open(dir.path() / "impgate.db")).value();
  DeviceRegistry registry = std::move(DeviceRegistry::open(db)).value();
  CHECK(**registry.find("imp-1") == device("imp-1"));
}
