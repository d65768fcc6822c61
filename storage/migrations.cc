#include "storage/migrations.h"

#include <string>

#include "storage/database.h"

namespace impgate::storage {
namespace {

// Times are unix milliseconds throughout.
constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE device_groups (
  name       TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL
);
CREATE TABLE devices (
  id             TEXT PRIMARY KEY,
  group_name     TEXT NOT NULL REFERENCES device_groups(name),
  cert_serial    TEXT NOT NULL,
  cert_not_after INTEGER,
  enrolled_at    INTEGER NOT NULL,
  revoked_at     INTEGER
);
CREATE INDEX devices_by_group ON devices(group_name);
CREATE TABLE audit_log (
  id     INTEGER PRIMARY KEY,
  at     INTEGER NOT NULL,
  actor  TEXT NOT NULL,
  action TEXT NOT NULL,
  detail TEXT NOT NULL
);
)sql"},
};

Error tooNew(const Database& db, int found) {
  return Error{ErrorCode::kSchemaTooNew,
               db.path().string() + " has schema version " + std::to_string(found) +
                   " but this impgate understands up to " + std::to_string(latestSchemaVersion()) +
                   "; upgrade impgate (the file was left untouched)"};
}

}  // namespace

std::span<const Migration> migrations() {
  return kMigrations;
}

int latestSchemaVersion() {
  return kMigrations[std::size(kMigrations) - 1].version;
}

Status migrate(Database& db) {
  // Cheap check first, outside any transaction, so a newer file is not even write-locked.
  Result<int> before = db.schemaVersion();
  if (!before) {
    return before.error();
  }
  if (*before > latestSchemaVersion()) {
    return tooNew(db, *before);
  }
  if (*before == latestSchemaVersion()) {
    return {};
  }

  Result<Transaction> txn = Transaction::begin(db);
  if (!txn) {
    return txn.error();
  }
  // Read again under the write lock: another process may have migrated in the meantime.
  Result<int> current = db.schemaVersion();
  if (!current) {
    return current.error();
  }
  if (*current > latestSchemaVersion()) {
    return tooNew(db, *current);
  }
  for (const Migration& m : migrations()) {
    if (m.version <= *current) {
      continue;
    }
    if (Status s = db.exec(m.sql); !s) {
      return Error{s.error().code, "migration to schema version " + std::to_string(m.version) +
                                       " failed: " + s.error().message};
    }
    // PRAGMA takes no bound parameters; the version is our own integer.
    std::string bump = "PRAGMA user_version = " + std::to_string(m.version);
    if (Status s = db.exec(bump.c_str()); !s) {
      return s;
    }
  }
  return txn->commit();
}

}  // namespace impgate::storage
