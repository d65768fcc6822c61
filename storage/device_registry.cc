#include "storage/device_registry.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "gateway/base/names.h"

namespace impgate::storage {
namespace {

constexpr char kDeviceColumns[] =
    "id, group_name, cert_serial, cert_not_after, enrolled_at, revoked_at";

DeviceRecord readDevice(const Statement& s) {
  return DeviceRecord{s.columnText(0),        s.columnText(1), s.columnText(2),
                      s.columnOptionalInt(3), s.columnInt(4),  s.columnOptionalInt(5)};
}

std::string enrollDetail(const DeviceRecord& d) {
  nlohmann::json j = {{"id", d.id}, {"group", d.group}, {"serial", d.certSerial}};
  j["not_after"] = d.certNotAfterMs ? nlohmann::json(*d.certNotAfterMs) : nlohmann::json(nullptr);
  return j.dump();
}

}  // namespace

Status DeviceRegistry::validateNames(std::string_view id, std::string_view group) {
  constexpr const char* kRule =
      "use 1-64 characters from A-Z a-z 0-9 . _ - (not starting with '.')";
  if (!isValidDeviceId(id)) {
    return Error{ErrorCode::kInvalidName, "invalid device id '" + std::string(id) + "': " + kRule};
  }
  if (!isValidDeviceId(group)) {
    return Error{ErrorCode::kInvalidName,
                 "invalid group name '" + std::string(group) + "': " + kRule};
  }
  return {};
}

Result<DeviceRegistry> DeviceRegistry::open(Database& db) {
  Result<AuditLog> audit = AuditLog::open(db);
  if (!audit) {
    return audit.error();
  }
  const std::string columns = kDeviceColumns;
  Statements stmts;
  const std::pair<Statement*, std::string> plan[] = {
      {&stmts.insertGroup,
       "INSERT INTO device_groups(name, created_at) VALUES(?1, ?2) ON CONFLICT(name) DO NOTHING"},
      {&stmts.insertDevice, "INSERT INTO devices(" + columns + ") VALUES(?1, ?2, ?3, ?4, ?5, ?6)"},
      {&stmts.replaceDevice,
       "UPDATE devices SET group_name = ?2, cert_serial = ?3, cert_not_after = ?4, "
       "enrolled_at = ?5, revoked_at = ?6 WHERE id = ?1"},
      {&stmts.revokeDevice,
       "UPDATE devices SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL"},
      {&stmts.findDevice, "SELECT " + columns + " FROM devices WHERE id = ?1"},
      {&stmts.listDevices, "SELECT " + columns + " FROM devices ORDER BY id"},
  };
  for (const auto& [target, sql] : plan) {
    Result<Statement> prepared = db.prepare(sql);
    if (!prepared) {
      return prepared.error();
    }
    *target = std::move(prepared).value();
  }
  return DeviceRegistry(db, std::move(audit).value(), std::move(stmts));
}

Status DeviceRegistry::enroll(const DeviceRecord& device, std::string_view actor,
                              OnExisting onExisting) {
  if (Status s = validateNames(device.id, device.group); !s) {
    return s;
  }
  Result<Transaction> txn = Transaction::begin(*db_);
  if (!txn) {
    return txn.error();
  }
  {
    StatementReset done(stmts_.insertGroup);
    stmts_.insertGroup.bind(1, device.group).bind(2, device.enrolledAtMs);
    if (Result<std::int64_t> r = stmts_.insertGroup.run(); !r) {
      return r.error();
    }
  }
  Result<std::optional<DeviceRecord>> existing = find(device.id);
  if (!existing) {
    return existing.error();
  }
  if (*existing && onExisting == OnExisting::kRefuse) {
    // The transaction's destructor rolls back the group created above.
    return Error{ErrorCode::kAlreadyEnrolled, "device '" + device.id + "' is already enrolled"};
  }
  Statement& write = *existing ? stmts_.replaceDevice : stmts_.insertDevice;
  {
    StatementReset done(write);
    write.bind(1, device.id)
        .bind(2, device.group)
        .bind(3, device.certSerial)
        .bind(4, device.certNotAfterMs)
        .bind(5, device.enrolledAtMs)
        .bind(6, device.revokedAtMs);
    if (Result<std::int64_t> r = write.run(); !r) {
      return r.error();
    }
  }
  AuditEntry entry{device.enrolledAtMs, std::string(actor),
                   *existing ? "device.reissue" : "device.enroll", enrollDetail(device)};
  if (Status s = audit_.append(entry); !s) {
    return s;
  }
  return txn->commit();
}

Status DeviceRegistry::revoke(std::string_view id, std::int64_t atMs, std::string_view actor) {
  Result<Transaction> txn = Transaction::begin(*db_);
  if (!txn) {
    return txn.error();
  }
  Result<std::int64_t> changed = [&] {
    StatementReset done(stmts_.revokeDevice);
    return stmts_.revokeDevice.bind(1, id).bind(2, atMs).run();
  }();
  if (!changed) {
    return changed.error();
  }
  if (*changed == 0) {
    Result<std::optional<DeviceRecord>> existing = find(id);
    if (!existing) {
      return existing.error();
    }
    if (!*existing) {
      return Error{ErrorCode::kNotFound, "device '" + std::string(id) + "' is not enrolled"};
    }
    return {};  // already revoked
  }
  nlohmann::json detail = {{"id", id}};
  if (Status s =
          audit_.append(AuditEntry{atMs, std::string(actor), "device.revoke", detail.dump()});
      !s) {
    return s;
  }
  return txn->commit();
}

Result<std::optional<DeviceRecord>> DeviceRegistry::find(std::string_view id) {
  Statement& s = stmts_.findDevice;
  StatementReset done(s);
  s.bind(1, id);
  Result<bool> row = s.step();
  if (!row) {
    return row.error();
  }
  if (!*row) {
    return std::optional<DeviceRecord>();
  }
  return std::optional<DeviceRecord>(readDevice(s));
}

Result<std::vector<DeviceRecord>> DeviceRegistry::list() {
  Statement& s = stmts_.listDevices;
  StatementReset done(s);
  std::vector<DeviceRecord> devices;
  for (;;) {
    Result<bool> row = s.step();
    if (!row) {
      return row.error();
    }
    if (!*row) {
      return devices;
    }
    devices.push_back(readDevice(s));
  }
}

Result<bool> DeviceRegistry::isActive(std::string_view id) {
  Result<std::optional<DeviceRecord>> device = find(id);
  if (!device) {
    return device.error();
  }
  return device->has_value() && !(*device)->revokedAtMs.has_value();
}

}  // namespace impgate::storage
