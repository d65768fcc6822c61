#include "tools/impctl/device_enroll_command.h"

#include <cstdio>
#include <system_error>

#include "gateway/base/pki/fleet_ca.h"
#include "storage/database.h"
#include "storage/device_registry.h"

namespace impgate::impctl {

namespace {

struct Enroller {
  const CommandContext& ctx;
  const pki::FleetCa& ca;
  storage::DeviceRegistry& registry;

  // Issues and records one device; on success fills `issued` and `wasEnrolled`. Returns an
  // error message, or an empty string.
  std::string enrollOne(const std::string& id, const DeviceEnrollArgs& args,
                        pki::IssuedDevice& issued, bool& wasEnrolled) {
    // Every check that can refuse comes before the certificate is issued, so a refusal leaves
    // the home exactly as it was.
    if (storage::Status s = storage::DeviceRegistry::validateNames(id, args.group); !s) {
      return s.error().message;
    }
    storage::Result<std::optional<storage::DeviceRecord>> existing = registry.find(id);
    if (!existing) {
      return existing.error().message;
    }
    wasEnrolled = existing->has_value();
    if (wasEnrolled && !args.reissue) {
      return "device '" + id + "' is already enrolled (serial " + (*existing)->certSerial +
             "); use --reissue to replace its key and certificate";
    }
    pki::Result<pki::IssuedDevice> result =
        ca.issueDevice(id, pki::IssueOptions{.validityDays = pki::kDeviceValidityDays,
                                             .replace = args.reissue,
                                             .group = args.group});
    if (!result) {
      if (result.error().code == pki::ErrorCode::kAlreadyExists) {
        return result.error().message +
               " but the device is not enrolled; use --reissue to replace them";
      }
      return result.error().message;
    }
    issued = *result;
    storage::DeviceRecord record{id,        args.group,  issued.serialHex, issued.notAfterMs,
                                 ctx.nowMs, std::nullopt};
    storage::Status enrolled = registry.enroll(
        record, ctx.actor,
        args.reissue ? storage::OnExisting::kReplace : storage::OnExisting::kRefuse);
    if (!enrolled) {
      if (!args.reissue) {
        // Nobody else can hold these fresh credentials yet: take them back so the registry and
        // the files agree.
        std::error_code ignored;
        std::filesystem::remove_all(ctx.home.deviceDir(id), ignored);
      }
      return enrolled.error().message;
    }
    return {};
  }
};

}  // namespace

int runDeviceEnroll(const CommandContext& ctx, const DeviceEnrollArgs& args) {
  if (args.count < 0 || args.count > 99999) {
    return ctx.fail("--count must be between 1 and 99999");
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
  Enroller enroller{ctx, *ca, *registry};
  pki::IssuedDevice issued;
  bool wasEnrolled = false;

  if (args.count == 0) {
    if (std::string error = enroller.enrollOne(args.id, args, issued, wasEnrolled);
        !error.empty()) {
      return ctx.fail(error);
    }
    ctx.out << (wasEnrolled ? "re-issued " : "enrolled ") << args.id << " in group " << args.group
            << " (serial " << issued.serialHex << ")\n"
            << "  key:         " << issued.keyPath.string() << "\n"
            << "  certificate: " << issued.certPath.string() << "\n"
            << "  trust:       " << ctx.home.caCert().string()
            << " (the device verifies the gateway with this)\n";
    if (issued.codeVerifyKeyPath.empty()) {
      ctx.out << "  code key:    none (this home has no code-signing key; run `impctl ca init` "
                 "and re-issue to push code to this device)\n";
    } else {
      ctx.out << "  code key:    " << issued.codeVerifyKeyPath.string()
              << " (the device accepts code signed with this key's private half)\n";
    }
    return kExitOk;
  }

  char id[96];
  for (long i = 1; i <= args.count; ++i) {
    std::snprintf(id, sizeof id, "%s%05ld", args.id.c_str(), i);
    if (std::string error = enroller.enrollOne(id, args, issued, wasEnrolled); !error.empty()) {
      return ctx.fail(error + " (after enrolling " + std::to_string(i - 1) + " devices)");
    }
  }
  std::snprintf(id, sizeof id, "%s%05ld", args.id.c_str(), args.count);
  ctx.out << "enrolled " << args.count << " devices " << args.id << "00001 .. " << id
          << " in group " << args.group << " under " << ctx.home.deviceDir("").string() << "\n";
  return kExitOk;
}

}  // namespace impgate::impctl
