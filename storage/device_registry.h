// The device registry: which device ids are enrolled, in which group, holding which
// certificate, and whether they have been revoked. impctl writes it; the gateway reads it after
// each TLS handshake (isActive) to refuse revoked devices whose certificates are still valid.
//
// Borrows the Database (see storage/database.h). Every change writes its audit row in the same
// transaction as the change itself.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/audit_log.h"
#include "storage/database.h"
#include "storage/result.h"

namespace impgate::storage {

struct DeviceRecord {
  std::string id;                              // passes isValidDeviceId()
  std::string group;                           // same rule as ids
  std::string certSerial;                      // hex, as `openssl x509 -serial` prints it
  std::optional<std::int64_t> certNotAfterMs;  // unix ms; unknown for imported records
  std::int64_t enrolledAtMs = 0;               // unix ms
  std::optional<std::int64_t> revokedAtMs;     // unix ms; nullopt while active

  bool operator==(const DeviceRecord&) const = default;
};

// What enroll() does when the id is already enrolled.
enum class OnExisting {
  kRefuse,   // fail with ErrorCode::kAlreadyEnrolled
  kReplace,  // re-issue: the record is overwritten (and un-revoked if revokedAtMs is unset)
};

class DeviceRegistry {
 public:
  static Result<DeviceRegistry> open(Database& db);

  // The naming rule enroll() applies: ids and group names both pass isValidDeviceId(), since
  // both end up in MQTT topics. Lets a caller check before doing work it would have to undo.
  static Status validateNames(std::string_view id, std::string_view group);

  // Records `device`, creating its group if missing, and audits it as `actor` at
  // device.enrolledAtMs; all in one transaction, so a refusal leaves nothing behind.
  Status enroll(const DeviceRecord& device, std::string_view actor,
                OnExisting onExisting = OnExisting::kRefuse);
  // Marks the device revoked at `atMs`. Revoking a revoked device changes nothing; an unknown id
  // fails with ErrorCode::kNotFound.
  Status revoke(std::string_view id, std::int64_t atMs, std::string_view actor);

  Result<std::optional<DeviceRecord>> find(std::string_view id);
  // Every device, ordered by id.
  Result<std::vector<DeviceRecord>> list();
  // True when the id is enrolled and not revoked.
  Result<bool> isActive(std::string_view id);

 private:
  struct Statements {
    Statement insertGroup;
    Statement insertDevice;
    Statement replaceDevice;
    Statement revokeDevice;
    Statement findDevice;
    Statement listDevices;
  };
  DeviceRegistry(Database& db, AuditLog audit, Statements stmts)
      : db_(&db), audit_(std::move(audit)), stmts_(std::move(stmts)) {}

  Database* db_;
  AuditLog audit_;
  Statements stmts_;
};

}  // namespace impgate::storage
