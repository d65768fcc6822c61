#include "tools/impctl/device_enroll_command.h"

#include <system_error>

#include "gateway/pki/fleet_ca.h"
#include "storage/database.h"
#include "storage/device_registry.h"

namespace impgate::impctl {

int runDeviceEnroll(const CommandContext& ctx, const DeviceEnrollArgs& args) {
  // Every check that can refuse comes before the certificate is issued, so a refusal leaves the
  // home exactly as it was.
  if (storage::Status s = storage::DeviceRegistry::validateNames(args.id, args.group); !s) {
    return ctx.fail(s.error().message);
  }
  pki::Result<pki::FleetCa> ca = pki::FleetCa::load(ctx.home);
  if (!ca) {
    return ctx.fail(ca.error().message);
  }
  storage::Result<storage::Database> db = storage::Database::open(ctx.home.database());
  if (!db) {
    return ctx.fail(db.error().message);
  }
  storage::Result<storage::DeviceRegistry> registry = storage::DeviceRegistry::open(*db);
  if (!registry) {
    return ctx.fail(registry.error().message);
  }
  storage::Result<std::optional<storage::DeviceRecord>> existing = registry->find(args.id);
  if (!existing) {
    return ctx.fail(existing.error().message);
  }
  if (*existing && !args.reissue) {
    return ctx.fail("device '" + args.id + "' is already enrolled (serial " +
                    (*existing)->certSerial +
                    "); use --reissue to replace its key and certificate");
  }

  pki::Result<pki::IssuedDevice> issued =
      ca->issueDevice(args.id, pki::IssueOptions{pki::kDeviceValidityDays, args.reissue});
  if (!issued) {
    if (issued.error().code == pki::ErrorCode::kAlreadyExists) {
      return ctx.fail(issued.error().message +
                      " but the device is not enrolled; use --reissue to replace them");
    }
    return ctx.fail(issued.error().message);
  }

  storage::DeviceRecord record{args.id,   args.group,  issued->serialHex, issued->notAfterMs,
                               ctx.nowMs, std::nullopt};
  storage::Status enrolled =
      registry->enroll(record, ctx.actor,
                       args.reissue ? storage::OnExisting::kReplace : storage::OnExisting::kRefuse);
  if (!enrolled) {
    if (!args.reissue) {
      // Nobody else can hold these fresh credentials yet: take them back so the registry and
      // the files agree.
      std::error_code ignored;
      std::filesystem::remove_all(ctx.home.deviceDir(args.id), ignored);
    }
    return ctx.fail(enrolled.error().message);
  }

  ctx.out << (*existing ? "re-issued " : "enrolled ") << args.id << " in group " << args.group
          << " (serial " << issued->serialHex << ")\n"
          << "  key:         " << issued->keyPath.string() << "\n"
          << "  certificate: " << issued->certPath.string() << "\n"
          << "  trust:       " << ctx.home.caCert().string()
          << " (the device verifies the gateway with this)\n";
  return kExitOk;
}

}  // namespace impgate::impctl
