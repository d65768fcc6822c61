// The schema's history. Each migration moves the database from version N-1 to N, where the
// version is SQLite's PRAGMA user_version; a fresh file is version 0. Migrations are append-only:
// once a version has shipped its SQL never changes, a later version alters it instead.
#pragma once

#include <span>

#include "storage/result.h"

namespace impgate::storage {

class Database;

struct Migration {
  int version;      // the user_version after this migration
  const char* sql;  // statements run in one transaction with the version bump
};

// Every migration, ordered by version, starting at 1 with no gaps.
std::span<const Migration> migrations();

// The version this build writes and understands.
int latestSchemaVersion();

// Brings `db` up to latestSchemaVersion() in a single transaction. A database already newer
// than that is refused with ErrorCode::kSchemaTooNew and left as it was.
Status migrate(Database& db);

}  // namespace impgate::storage
