#include "tools/impctl/ca_init_command.h"

#include <nlohmann/json.hpp>

#include "gateway/base/pki/fleet_ca.h"
#include "storage/audit_log.h"
#include "storage/database.h"

namespace impgate::impctl {

int runCaInit(const CommandContext& ctx, const CaInitArgs& args) {
  pki::Result<pki::FleetCa> ca =
      pki::FleetCa::init(ctx.home, pki::InitOptions{args.serverNames, args.force});
  if (!ca) {
    return ctx.fail(ca.error().message);
  }
  // Creating the database now means a later `device list` on this home finds it.
  storage::Result<storage::Database> db = storage::Database::open(ctx.home.database());
  if (!db) {
    return ctx.fail(db.error().message);
  }
  storage::Result<storage::AuditLog> audit = storage::AuditLog::open(*db);
  if (!audit) {
    return ctx.fail(audit.error().message);
  }
  nlohmann::json detail = {
      {"ca", ca->name()}, {"server_names", args.serverNames}, {"force", args.force}};
  if (storage::Status s = audit->append({ctx.nowMs, ctx.actor, "ca.init", detail.dump()}); !s) {
    return ctx.fail(s.error().message);
  }
  ctx.out << "created " << ca->name() << " in " << ctx.home.root().string() << "\n"
          << "  CA certificate:      " << ctx.home.caCert().string() << "\n"
          << "  CA key:              " << ctx.home.caKey().string() << "\n"
          << "  gateway certificate: " << ctx.home.gatewayCert().string() << "\n"
          << "  gateway key:         " << ctx.home.gatewayKey().string() << "\n"
          << "  device database:     " << ctx.home.database().string() << "\n";
  if (args.force) {
    ctx.err << "impctl: warning: certificates issued by the previous CA no longer verify; "
               "re-enroll devices with `impctl device enroll ID --reissue`\n";
  }
  return kExitOk;
}

}  // namespace impgate::impctl
