#include "storage/database.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <iterator>
#include <string>

#include "storage/migrations.h"
#include "tests/support/testbed.h"

using namespace impgate::storage;
using impgate::testing::TempDir;

namespace {

std::string pragmaText(Database& db, const char* pragma) {
  Result<Statement> s = db.prepare(std::string("PRAGMA ") + pragma);
  REQUIRE(s.ok());
  Result<bool> row = s->step();
  REQUIRE(row.ok());
  REQUIRE(*row);
  return s->columnText(0);
}

std::int64_t countRows(Database& db, const std::string& sql) {
  Result<Statement> s = db.prepare(sql);
  REQUIRE(s.ok());
  Result<bool> row = s->step();
  REQUIRE(row.ok());
  REQUIRE(*row);
  return s->columnInt(0);
}

std::string fileBytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Writes a database whose user_version is newer than this build knows, with raw SQLite.
void writeFutureDatabase(const std::filesystem::path& path) {
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &raw) == SQLITE_OK);
  std::string sql = "CREATE TABLE from_the_future(x); PRAGMA user_version = " +
                    std::to_string(latestSchemaVersion() + 1) + ";";
  REQUIRE(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(raw);
}

}  // namespace

TEST_CASE("migrations are ordered, start at 1 and have no gaps") {
  int expected = 1;
  for (const Migration& m : migrations()) {
    CHECK(m.version == expected);
    ++expected;
  }
  CHECK(latestSchemaVersion() == expected - 1);
}

TEST_CASE("opening a new file migrates it to the latest schema with WAL and foreign keys") {
  TempDir dir;
  Result<Database> db = Database::open(dir.path() / "impgate.db");
  REQUIRE(db.ok());
  Result<int> version = db->schemaVersion();
  REQUIRE(version.ok());
  CHECK(*version == latestSchemaVersion());
  CHECK(pragmaText(*db, "journal_mode") == "wal");
  CHECK(pragmaText(*db, "foreign_keys") == "1");
  CHECK(countRows(*db,
                  "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                  "('device_groups', 'devices', 'audit_log')") == 3);
}

TEST_CASE("reopening a migrated database changes nothing and keeps its rows") {
  TempDir dir;
  const auto path = dir.path() / "impgate.db";
  {
    Result<Database> db = Database::open(path);
    REQUIRE(db.ok());
    REQUIRE(db->exec("INSERT INTO device_groups(name, created_at) VALUES('g', 1)").ok());
  }
  for (int i = 0; i < 2; ++i) {
    Result<Database> db = Database::open(path);
    REQUIRE(db.ok());
    CHECK(*db->schemaVersion() == latestSchemaVersion());
    CHECK(countRows(*db, "SELECT count(*) FROM device_groups") == 1);
  }
}

TEST_CASE("a database from a newer schema is refused and left untouched") {
  TempDir dir;
  const auto path = dir.path() / "impgate.db";
  writeFutureDatabase(path);
  const std::string before = fileBytes(path);

  Result<Database> db = Database::open(path);
  REQUIRE_FALSE(db.ok());
  CHECK(db.error().code == ErrorCode::kSchemaTooNew);
  CHECK_THAT(db.error().message, Catch::Contains("upgrade impgate"));
  CHECK(fileBytes(path) == before);
}

TEST_CASE("OpenMode::kExisting does not create a missing file") {
  TempDir dir;
  Result<Database> db = Database::open(dir.path() / "missing.db", OpenMode::kExisting);
  REQUIRE_FALSE(db.ok());
  CHECK(db.error().code == ErrorCode::kNotFound);
  CHECK_FALSE(std::filesystem::exists(dir.path() / "missing.db"));
}

TEST_CASE("a file that is not a database is an error value") {
  TempDir dir;
  const auto path = dir.path() / "garbage.db";
  std::ofstream(path) << std::string(4096, 'x');
  Result<Database> db = Database::open(path);
  REQUIRE_FALSE(db.ok());
  CHECK(db.error().code == ErrorCode::kSqlite);
  CHECK_THAT(db.error().message, Catch::Contains("not a database"));
}

TEST_CASE("a database in a directory that does not exist is an error value") {
  TempDir dir;
  Result<Database> db = Database::open(dir.path() / "no" / "such" / "impgate.db");
  REQUIRE_FALSE(db.ok());
  CHECK_THAT(db.error().message, Catch::Contains("cannot open database"));
}

TEST_CASE("a transaction that is not committed leaves no rows") {
  TempDir dir;
  Result<Database> db = Database::open(dir.path() / "impgate.db");
  REQUIRE(db.ok());
  {
    Result<Transaction> txn = Transaction::begin(*db);
    REQUIRE(txn.ok());
    REQUIRE(db->exec("INSERT INTO device_groups(name, created_at) VALUES('a', 1);"
                     "INSERT INTO device_groups(name, created_at) VALUES('b', 1)")
                .ok());
  }
  CHECK(countRows(*db, "SELECT count(*) FROM device_groups") == 0);
  {
    Result<Transaction> txn = Transaction::begin(*db);
    REQUIRE(txn.ok());
    REQUIRE(db->exec("INSERT INTO device_groups(name, created_at) VALUES('c', 1)").ok());
    REQUIRE(txn->commit().ok());
  }
  CHECK(countRows(*db, "SELECT count(*) FROM device_groups") == 1);
}

TEST_CASE("foreign keys are enforced") {
  TempDir dir;
  Result<Database> db = Database::open(dir.path() / "impgate.db");
  REQUIRE(db.ok());
  Status s = db->exec(
      "INSERT INTO devices(id, group_name, cert_serial, enrolled_at) VALUES('d', 'nogroup', 'ab', "
      "1)");
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.error().message, Catch::Contains("FOREIGN KEY"));
}

TEST_CASE("statements are reusable after reset, and a bad bind surfaces at step") {
  TempDir dir;
  Result<Database> db = Database::open(dir.path() / "impgate.db");
  REQUIRE(db.ok());
  Result<Statement> insert =
      db->prepare("INSERT INTO device_groups(name, created_at) VALUES(?1, ?2)");
  REQUIRE(insert.ok());
  for (const char* name : {"a", "b", "c"}) {
    StatementReset done(*insert);
    Result<std::int64_t> changed = insert->bind(1, name).bind(2, std::int64_t{7}).run();
    REQUIRE(changed.ok());
    CHECK(*changed == 1);
  }
  CHECK(countRows(*db, "SELECT count(*) FROM device_groups WHERE created_at = 7") == 3);

  insert->bind(3, std::int64_t{1});  // there is no ?3
  Result<std::int64_t> bad = insert->run();
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.error().message, Catch::Contains("cannot bind"));
  insert->reset();
}
