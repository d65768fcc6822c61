#include "tools/impctl/ca_init_command.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <system_error>

#include "gateway/base/pki/code_signing.h"
#include "gateway/base/pki/fleet_ca.h"
#include "storage/audit_log.h"
#include "storage/database.h"

namespace impgate::impctl {

namespace {

bool pathExists(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::exists(std::filesystem::symlink_status(p, ec));
}

int audit(const CommandContext& ctx, const std::string& action, const nlohmann::json& detail) {
  // Creating the database now means a later `device list` on this home finds it.
  storage::Result<storage::Database> db = storage::Database::open(ctx.home.database());
  if (!db) {
    return ctx.fail(db.error().message);
  }
  storage::Result<storage::AuditLog> log = storage::AuditLog::open(*db);
  if (!log) {
    return ctx.fail(log.error().message);
  }
  if (storage::Status s = log->append({ctx.nowMs, ctx.actor, action, detail.dump()}); !s) {
    return ctx.fail(s.error().message);
  }
  return kExitOk;
}

// A home made before code push: keep its CA, add the signing key.
int addSigningKey(const CommandContext& ctx, const CaInitArgs& args) {
  pki::Result<pki::FleetCa> ca = pki::FleetCa::load(ctx.home);
  if (!ca) {
    return ctx.fail(ca.error().message);
  }
  if (!args.serverNames.empty()) {
    return ctx.fail("a fleet CA already exists in " + ctx.home.root().string() +
                    "; --server-name needs --force (which replaces the CA)");
  }
  if (pki::Status s = pki::createCodeSigningKey(ctx.home, pki::Replace::kNo); !s) {
    return ctx.fail(s.error().message);
  }
  if (int rc = audit(ctx, "ca.init_code_signing", {{"ca", ca->name()}}); rc != kExitOk) {
    return rc;
  }
  ctx.out << "kept " << ca->name() << " in " << ctx.home.root().string()
          << "; created the fleet code-signing key\n"
          << "  code-signing key:    " << ctx.home.codeSigningKey().string() << "\n"
          << "  code-verify key:     " << ctx.home.codeVerifyKey().string() << "\n";
  ctx.err << "impctl: note: devices enrolled before now hold no code-verify key; re-enroll "
             "them with `impctl device enroll ID --reissue` before pushing code to them\n";
  return kExitOk;
}

}  // namespace

int runCaInit(const CommandContext& ctx, const CaInitArgs& args) {
  if (!args.force && (pathExists(ctx.home.caKey()) || pathExists(ctx.home.caCert())) &&
      !pathExists(ctx.home.codeSigningKey())) {
    return addSigningKey(ctx, args);
  }
  pki::Result<pki::FleetCa> ca =
      pki::FleetCa::init(ctx.home, pki::InitOptions{args.serverNames, args.force});
  if (!ca) {
    return ctx.fail(ca.error().message);
  }
  nlohmann::json detail = {
      {"ca", ca->name()}, {"server_names", args.serverNames}, {"force", args.force}};
  if (int rc = audit(ctx, "ca.init", detail); rc != kExitOk) {
    return rc;
  }
  ctx.out << "created " << ca->name() << " in " << ctx.home.root().string() << "\n"
          << "  CA certificate:      " << ctx.home.caCert().string() << "\n"
          << "  CA key:              " << ctx.home.caKey().string() << "\n"
          << "  gateway certificate: " << ctx.home.gatewayCert().string() << "\n"
          << "  gateway key:         " << ctx.home.gatewayKey().string() << "\n"
          << "  code-signing key:    " << ctx.home.codeSigningKey().string() << "\n"
          << "  code-verify key:     " << ctx.home.codeVerifyKey().string() << "\n"
          << "  device database:     " << ctx.home.database().string() << "\n";
  if (args.force) {
    ctx.err << "impctl: warning: certificates issued by the previous CA no longer verify and "
               "code signed with the previous signing key is refused; re-enroll devices with "
               "`impctl device enroll ID --reissue`\n";
  }
  return kExitOk;
}

}  // namespace impgate::impctl
