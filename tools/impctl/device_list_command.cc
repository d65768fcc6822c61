#include "tools/impctl/device_list_command.h"

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>
#include <system_error>
#include <vector>

#include "storage/database.h"
#include "storage/device_registry.h"

namespace impgate::impctl {
namespace {

std::string utcTime(std::int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string status(const storage::DeviceRecord& d, std::int64_t nowMs) {
  if (d.revokedAtMs) {
    return "revoked";
  }
  if (d.certNotAfterMs && *d.certNotAfterMs <= nowMs) {
    return "expired";
  }
  return "active";
}

void printJson(const CommandContext& ctx, const std::vector<storage::DeviceRecord>& devices) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& d : devices) {
    out.push_back({{"id", d.id},
                   {"group", d.group},
                   {"serial", d.certSerial},
                   {"enrolled_at", d.enrolledAtMs},
                   {"not_after",
                    d.certNotAfterMs ? nlohmann::json(*d.certNotAfterMs) : nlohmann::json(nullptr)},
                   {"revoked", d.revokedAtMs.has_value()}});
  }
  ctx.out << out.dump(2) << "\n";
}

void printTable(const CommandContext& ctx, const std::vector<storage::DeviceRecord>& devices) {
  std::vector<std::vector<std::string>> rows = {{"ID", "GROUP", "SERIAL", "ENROLLED", "STATUS"}};
  for (const auto& d : devices) {
    rows.push_back({d.id, d.group, d.certSerial, utcTime(d.enrolledAtMs), status(d, ctx.nowMs)});
  }
  std::vector<std::size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line.append(widths[i] - row[i].size() + 2, ' ');
      }
    }
    ctx.out << line << "\n";
  }
}

}  // namespace

int runDeviceList(const CommandContext& ctx, const DeviceListArgs& args) {
  std::error_code ec;
  if (!std::filesystem::is_directory(ctx.home.root(), ec)) {
    return ctx.fail("no impgate home at " + ctx.home.root().string() +
                    (ec ? " (" + ec.message() + ")" : "") + "; run `impctl ca init` first");
  }
  // kExisting: listing must not leave an empty database behind in a home nobody set up.
  storage::Result<storage::Database> db =
      storage::Database::open(ctx.home.database(), storage::OpenMode::kExisting);
  if (!db) {
    if (db.error().code == storage::ErrorCode::kNotFound) {
      return ctx.fail(db.error().message + "; run `impctl ca init` first");
    }
    return ctx.fail(db.error().message);
  }
  storage::Result<storage::DeviceRegistry> registry = storage::DeviceRegistry::open(*db);
  if (!registry) {
    return ctx.fail(registry.error().message);
  }
  storage::Result<std::vector<storage::DeviceRecord>> devices = registry->list();
  if (!devices) {
    return ctx.fail(devices.error().message);
  }
  if (args.json) {
    printJson(ctx, *devices);
  } else {
    printTable(ctx, *devices);
  }
  return kExitOk;
}

}  // namespace impgate::impctl
