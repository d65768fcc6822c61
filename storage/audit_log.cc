#include "storage/audit_log.h"

#include <utility>

namespace impgate::storage {

Result<AuditLog> AuditLog::open(Database& db) {
  Result<Statement> insert =
      db.prepare("INSERT INTO audit_log(at, actor, action, detail) VALUES(?1, ?2, ?3, ?4)");
  if (!insert) {
    return insert.error();
  }
  Result<Statement> recent =
      db.prepare("SELECT at, actor, action, detail FROM audit_log ORDER BY id DESC LIMIT ?1");
  if (!recent) {
    return recent.error();
  }
  return AuditLog(std::move(insert).value(), std::move(recent).value());
}

Status AuditLog::append(const AuditEntry& entry) {
  StatementReset done(insert_);
  insert_.bind(1, entry.atMs).bind(2, entry.actor).bind(3, entry.action).bind(4, entry.detail);
  Result<std::int64_t> changed = insert_.run();
  return changed.status();
}

Result<std::vector<AuditEntry>> AuditLog::recent(int limit) {
  StatementReset done(recent_);
  recent_.bind(1, std::int64_t{limit});
  std::vector<AuditEntry> entries;
  for (;;) {
    Result<bool> row = recent_.step();
    if (!row) {
      return row.error();
    }
    if (!*row) {
      return entries;
    }
    entries.push_back(AuditEntry{recent_.columnInt(0), recent_.columnText(1), recent_.columnText(2),
                                 recent_.columnText(3)});
  }
}

}  // namespace impgate::storage
