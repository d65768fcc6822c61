// The process's one connection to the impgate SQLite database, plus the two RAII helpers every
// store built on it uses: Statement (prepared once, reused) and Transaction.
//
// Ownership: one Database per process (the gateway's storage thread, or an impctl run). Stores
// such as DeviceRegistry borrow it by reference and prepare their statements against it, so
// the Database must outlive them and must not be moved while they exist. A Database is not
// shared between threads.
//
// Errors are values (see storage/result.h); nothing here throws.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/result.h"

namespace impgate::storage {

class Statement;

enum class OpenMode {
  kCreate,    // Create the file if it is missing.
  kExisting,  // Fail with ErrorCode::kNotFound if it is missing.
};

class Database {
 public:
  // How long a writer waits for another process's write transaction before giving up.
  static constexpr int kBusyTimeoutMs = 5000;

  // Opens (or creates) the database at `path`: foreign keys on, WAL journal, busy timeout, and
  // migrations up to latestSchemaVersion(). A file written by a newer schema is refused with
  // ErrorCode::kSchemaTooNew before anything in it is changed.
  static Result<Database> open(const std::filesystem::path& path,
                               OpenMode mode = OpenMode::kCreate);

  Database(Database&& other) noexcept;
  Database& operator=(Database&& other) noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  // Prepares one SQL statement for repeated use.
  Result<Statement> prepare(std::string_view sql);
  // Runs SQL text that returns no rows (may hold several statements). For fixed SQL only:
  // never splice untrusted values into it.
  Status exec(const char* sql);
  // PRAGMA user_version: the schema version this file is at.
  Result<int> schemaVersion();

  const std::filesystem::path& path() const { return path_; }
  sqlite3* handle() const { return db_; }

 private:
  Database(sqlite3* db, std::filesystem::path path) : db_(db), path_(std::move(path)) {}

  sqlite3* db_ = nullptr;
  std::filesystem::path path_;
};

// A prepared statement. Bind parameters (1-based, as in SQLite), then step() or run(); reset()
// before the next use. A failed bind is remembered and reported by the next step()/run().
class Statement {
 public:
  // Holds no statement: only a place to move a prepared one into.
  Statement() = default;
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, std::optional<std::int64_t> value);  // nullopt binds NULL
  // Named apart from bind(): an int argument would be ambiguous between int64 and double.
  Statement& bindBlob(int index, std::span<const std::uint8_t> bytes);  // empty binds x''
  Statement& bindReal(int index, double value);

  // Advances to the next row: true while a row is available, false once the statement is done.
  Result<bool> step();
  // Runs a statement that returns no rows; yields the number of rows it changed.
  Result<std::int64_t> run();
  // Makes the statement ready for new bindings and releases any read it still holds.
  void reset();

  // Columns of the current row, 0-based.
  std::int64_t columnInt(int column) const;
  std::optional<std::int64_t> columnOptionalInt(int column) const;
  std::string columnText(int column) const;
  std::vector<std::uint8_t> columnBlob(int column) const;
  double columnReal(int column) const;

 private:
  friend class Database;
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  void noteBindResult(int rc);

  sqlite3_stmt* stmt_ = nullptr;
  int bindError_ = SQLITE_OK;
};

// Resets a Statement when the scope that used it ends, whatever path it leaves by.
class StatementReset {
 public:
  explicit StatementReset(Statement& stmt) : stmt_(stmt) {}
  ~StatementReset() { stmt_.reset(); }
  StatementReset(const StatementReset&) = delete;
  StatementReset& operator=(const StatementReset&) = delete;

 private:
  Statement& stmt_;
};

// BEGIN IMMEDIATE on creation (so the write lock is taken up front and busy waits happen
// here, not half-way through); ROLLBACK on destruction unless commit() succeeded.
class Transaction {
 public:
  static Result<Transaction> begin(Database& db);

  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  Status commit();

 private:
  explicit Transaction(Database& db) : db_(&db) {}

  Database* db_;  // null once committed, rolled back, or moved from
};

// The Error for a failed SQLite call on `db`: "<context>: <sqlite message>".
Error sqliteError(sqlite3* db, std::string_view context);

}  // namespace impgate::storage
