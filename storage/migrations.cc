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
    // Code push (storage/code_registry.h). A group's deployment numbers come from its own
    // counter so a deleted number is never given out again; min_supported only moves forward.
    // push_history has no foreign keys: it is history, and outlives deleted deployments.
    {2, R"sql(
ALTER TABLE device_groups ADD COLUMN next_deployment INTEGER NOT NULL DEFAULT 1;
ALTER TABLE device_groups ADD COLUMN min_supported INTEGER;
CREATE TABLE code_versions (
  sha        TEXT PRIMARY KEY CHECK (length(sha) = 64),
  size       INTEGER NOT NULL CHECK (size > 0),
  note       TEXT NOT NULL,
  author     TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  signature  BLOB NOT NULL CHECK (length(signature) = 64),
  content    BLOB NOT NULL CHECK (length(content) = size)
);
CREATE TABLE deployments (
  group_name     TEXT NOT NULL REFERENCES device_groups(name),
  number         INTEGER NOT NULL CHECK (number > 0),
  code_sha       TEXT NOT NULL REFERENCES code_versions(sha),
  stages         TEXT NOT NULL,
  max_concurrent INTEGER NOT NULL,
  halt_failures  REAL NOT NULL,
  min_supported  INTEGER NOT NULL,
  flagged        INTEGER NOT NULL DEFAULT 0,
  paused         INTEGER NOT NULL DEFAULT 0,
  resume         INTEGER NOT NULL DEFAULT 0,
  created_at     INTEGER NOT NULL,
  author         TEXT NOT NULL,
  note           TEXT NOT NULL,
  PRIMARY KEY (group_name, number)
);
CREATE INDEX deployments_by_code ON deployments(code_sha);
CREATE TABLE push_history (
  id         INTEGER PRIMARY KEY,
  device     TEXT NOT NULL,
  group_name TEXT NOT NULL,
  deployment INTEGER NOT NULL,
  code_sha   TEXT NOT NULL,
  state      TEXT NOT NULL,
  reason     TEXT NOT NULL,
  at         INTEGER NOT NULL,
  node       TEXT NOT NULL
);
CREATE INDEX push_history_by_device ON push_history(device, group_name, deployment, id);
CREATE INDEX push_history_by_group ON push_history(group_name, device, id);
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
