// The audit log: an append-only record of operator actions (who did what, when), kept in the
// same database as the state it describes so that a change and its audit row commit together.
//
// Borrows the Database (see storage/database.h for ownership). Callers that change state append
// inside their own Transaction; AuditLog never opens one itself.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "storage/database.h"
#include "storage/result.h"

namespace impgate::storage {

struct AuditEntry {
  std::int64_t atMs = 0;  // unix milliseconds
  std::string actor;      // e.g. "impctl:alice"
  std::string action;     // dotted verb, e.g. "device.enroll"
  std::string detail;     // JSON object with the action's parameters
};

class AuditLog {
 public:
  static Result<AuditLog> open(Database& db);

  Status append(const AuditEntry& entry);
  // The newest `limit` entries, newest first.
  Result<std::vector<AuditEntry>> recent(int limit);

 private:
  AuditLog(Statement insert, Statement recent)
      : insert_(std::move(insert)), recent_(std::move(recent)) {}

  Statement insert_;
  Statement recent_;
};

}  // namespace impgate::storage
