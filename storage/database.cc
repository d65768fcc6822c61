#include "storage/database.h"

#include <cassert>
#include <climits>
#include <system_error>
#include <utility>

#include "gateway/base/log.h"
#include "storage/migrations.h"

namespace impgate::storage {
namespace {

// Enough of the SQL to tell an operator which statement failed without dumping all of it.
std::string sqlContext(sqlite3_stmt* stmt) {
  std::string sql = sqlite3_sql(stmt) ? sqlite3_sql(stmt) : "";
  constexpr std::size_t kMax = 60;
  if (sql.size() > kMax) {
    sql.resize(kMax);
    sql += "...";
  }
  return "while running \"" + sql + "\"";
}

}  // namespace

Error sqliteError(sqlite3* db, std::string_view context) {
  std::string message(context);
  message += ": ";
  message += db ? sqlite3_errmsg(db) : "out of memory";
  return Error{ErrorCode::kSqlite, std::move(message)};
}

// ---- Database

Result<Database> Database::open(const std::filesystem::path& path, OpenMode mode) {
  int flags = SQLITE_OPEN_READWRITE;
  if (mode == OpenMode::kCreate) {
    flags |= SQLITE_OPEN_CREATE;
  } else {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec) && !ec) {
      return Error{ErrorCode::kNotFound, "no database at " + path.string()};
    }
  }
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  // From here the handle is owned, even if opening failed (SQLite still allocates one).
  Database db(raw, path);
  if (rc != SQLITE_OK) {
    return sqliteError(raw, "cannot open database " + path.string());
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);
  // Foreign keys are off by default and are a per-connection setting.
  if (Status s = db.exec("PRAGMA foreign_keys = ON"); !s) {
    return s.error();
  }
  // migrate() checks the version before writing anything, so a newer file stays untouched.
  if (Status s = migrate(db); !s) {
    return s.error();
  }
  // WAL lets readers (the gateway) and a writer (impctl) run concurrently. The mode persists in
  // the file; NORMAL sync is durable against process crashes, which is the WAL-recommended trade.
  Result<Statement> wal = db.prepare("PRAGMA journal_mode = WAL");
  if (!wal) {
    return wal.error();
  }
  Result<bool> row = wal->step();
  if (!row) {
    return row.error();
  }
  if (*row && wal->columnText(0) != "wal") {
    log::warn("storage", "database is not in WAL mode; concurrent access will block",
              {{"path", path.string()}, {"journal_mode", wal->columnText(0)}});
  }
  wal->reset();
  if (Status s = db.exec("PRAGMA synchronous = NORMAL"); !s) {
    return s.error();
  }
  return db;
}

Database::Database(Database&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), path_(std::move(other.path_)) {}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
    path_ = std::move(other.path_);
  }
  return *this;
}

// close_v2: if a borrower's statements outlive us the handle is released with the last of them.
Database::~Database() {
  sqlite3_close_v2(db_);
}

Result<Statement> Database::prepare(std::string_view sql) {
  if (sql.size() > INT_MAX) {
    return Error{ErrorCode::kSqlite, "SQL text too long"};
  }
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return sqliteError(db_, "cannot prepare \"" + std::string(sql) + "\"");
  }
  return Statement(stmt);
}

Status Database::exec(const char* sql) {
  char* message = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    Error e{ErrorCode::kSqlite, message ? message : sqlite3_errstr(rc)};
    sqlite3_free(message);
    e.message = path_.string() + ": " + e.message;
    return e;
  }
  return {};
}

Result<int> Database::schemaVersion() {
  Result<Statement> stmt = prepare("PRAGMA user_version");
  if (!stmt) {
    return stmt.error();
  }
  Result<bool> row = stmt->step();
  if (!row) {
    return Error{row.error().code, path_.string() + ": " + row.error().message};
  }
  if (!*row) {
    return Error{ErrorCode::kSqlite, "PRAGMA user_version returned no row"};
  }
  return static_cast<int>(stmt->columnInt(0));
}

// ---- Statement

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)), bindError_(other.bindError_) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    stmt_ = std::exchange(other.stmt_, nullptr);
    bindError_ = other.bindError_;
  }
  return *this;
}

Statement::~Statement() {
  sqlite3_finalize(stmt_);
}

void Statement::noteBindResult(int rc) {
  if (rc != SQLITE_OK && bindError_ == SQLITE_OK) {
    bindError_ = rc;
  }
}

Statement& Statement::bind(int index, std::string_view text) {
  if (text.size() > INT_MAX) {
    noteBindResult(SQLITE_TOOBIG);
    return *this;
  }
  noteBindResult(sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()),
                                   SQLITE_TRANSIENT));
  return *this;
}

Statement& Statement::bind(int index, std::int64_t value) {
  noteBindResult(sqlite3_bind_int64(stmt_, index, value));
  return *this;
}

Statement& Statement::bind(int index, std::optional<std::int64_t> value) {
  noteBindResult(value ? sqlite3_bind_int64(stmt_, index, *value)
                       : sqlite3_bind_null(stmt_, index));
  return *this;
}

Statement& Statement::bindBlob(int index, std::span<const std::uint8_t> bytes) {
  if (bytes.size() > INT_MAX) {
    noteBindResult(SQLITE_TOOBIG);
    return *this;
  }
  // A null pointer would bind NULL, not an empty blob.
  noteBindResult(bytes.empty()
                     ? sqlite3_bind_zeroblob(stmt_, index, 0)
                     : sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()),
                                         SQLITE_TRANSIENT));
  return *this;
}

Statement& Statement::bindReal(int index, double value) {
  noteBindResult(sqlite3_bind_double(stmt_, index, value));
  return *this;
}

Result<bool> Statement::step() {
  assert(stmt_ && "step() on a Statement that was never prepared");
  if (bindError_ != SQLITE_OK) {
    return Error{ErrorCode::kSqlite, std::string("cannot bind parameter: ") +
                                         sqlite3_errstr(bindError_) + " " + sqlContext(stmt_)};
  }
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) {
    return true;
  }
  if (rc == SQLITE_DONE) {
    return false;
  }
  return sqliteError(sqlite3_db_handle(stmt_), sqlContext(stmt_));
}

Result<std::int64_t> Statement::run() {
  for (;;) {
    Result<bool> row = step();
    if (!row) {
      return row.error();
    }
    if (!*row) {
      return static_cast<std::int64_t>(sqlite3_changes64(sqlite3_db_handle(stmt_)));
    }
  }
}

void Statement::reset() {
  // reset() repeats the last step's error code; that error was already reported by step().
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bindError_ = SQLITE_OK;
}

std::int64_t Statement::columnInt(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

std::optional<std::int64_t> Statement::columnOptionalInt(int column) const {
  if (sqlite3_column_type(stmt_, column) == SQLITE_NULL) {
    return std::nullopt;
  }
  return sqlite3_column_int64(stmt_, column);
}

std::string Statement::columnText(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (!text) {
    return {};
  }
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::vector<std::uint8_t> Statement::columnBlob(int column) const {
  const auto* bytes = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, column));
  if (!bytes) {
    return {};
  }
  return std::vector<std::uint8_t>(
      bytes, bytes + static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
}

double Statement::columnReal(int column) const {
  return sqlite3_column_double(stmt_, column);
}

// ---- Transaction

Result<Transaction> Transaction::begin(Database& db) {
  if (Status s = db.exec("BEGIN IMMEDIATE"); !s) {
    return s.error();
  }
  return Transaction(db);
}

Transaction::Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}

Transaction::~Transaction() {
  // Some errors (SQLITE_FULL, IOERR, ...) already rolled back; ROLLBACK would then fail.
  if (db_ && !sqlite3_get_autocommit(db_->handle())) {
    if (Status s = db_->exec("ROLLBACK"); !s) {
      log::error("storage", "rollback failed", {{"error", s.error().message}});
    }
  }
}

Status Transaction::commit() {
  assert(db_ && "commit() of a transaction that already ended");
  // On failure (e.g. SQLITE_BUSY) the transaction stays open and the destructor rolls it back.
  Status s = db_->exec("COMMIT");
  if (s) {
    db_ = nullptr;
  }
  return s;
}

}  // namespace impgate::storage
