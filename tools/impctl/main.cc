// impctl: the operator CLI. Parses the command line and hands each command to its run function;
// the work itself lives in the pki and storage libraries the gateway also uses.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <optional>
#include <string>

#include "tools/impctl/ca_init_command.h"
#include "tools/impctl/code_query_commands.h"
#include "tools/impctl/code_release_commands.h"
#include "tools/impctl/code_status_command.h"
#include "tools/impctl/command_context.h"
#include "tools/impctl/device_enroll_command.h"
#include "tools/impctl/device_list_command.h"
#include "tools/impctl/group_commands.h"

using namespace impgate::impctl;

namespace {

int run(int argc, char** argv) {
  CLI::App app{"impctl: manage an impgate fleet (CA, device credentials, registry, code push)",
               "impctl"};
  app.require_subcommand(1);
  std::string homeFlag;
  app.add_option("--home", homeFlag,
                 "impgate home directory (default: $IMPGATE_HOME, else ./.impgate)");
  // Let --home appear after the subcommand too: `impctl device list --home DIR`.
  app.fallthrough();

  CLI::App* ca = app.add_subcommand("ca", "the fleet certificate authority");
  ca->require_subcommand(1);
  CaInitArgs caInit;
  CLI::App* caInitCmd =
      ca->add_subcommand("init",
                         "create the fleet CA, the gateway's server certificate and the fleet "
                         "code-signing key (only the signing key, on a home that has a CA "
                         "but none)");
  caInitCmd->add_option("--server-name", caInit.serverNames,
                        "a DNS name or IP address devices use to reach the gateway (repeatable; "
                        "localhost, 127.0.0.1 and ::1 are always included)");
  caInitCmd->add_flag("--force", caInit.force,
                      "replace an existing CA and code-signing key (every issued certificate "
                      "and every code signature stops working)");

  CLI::App* device = app.add_subcommand("device", "device credentials and the registry");
  device->require_subcommand(1);
  DeviceEnrollArgs enroll;
  CLI::App* enrollCmd =
      device->add_subcommand("enroll", "issue a device's key and certificate and record it");
  enrollCmd->add_option("id", enroll.id, "device id: 1-64 of A-Z a-z 0-9 . _ -")->required();
  enrollCmd->add_option("--group", enroll.group, "device group")->capture_default_str();
  enrollCmd->add_option("--count", enroll.count,
                        "enroll ID00001 .. ID<count>, with ID as a prefix (test fleets)");
  enrollCmd->add_flag("--reissue", enroll.reissue,
                      "replace the key and certificate of an enrolled device");
  DeviceListArgs list;
  CLI::App* listCmd = device->add_subcommand("list", "list enrolled devices");
  listCmd->add_flag("--json", list.json,
                    "print a JSON array of {id, group, serial, enrolled_at, not_after, revoked}");

  // Code push: groups, device move, and the code commands (docs/code-push.md).
  GroupCommands groups;
  groups.add(app, *device);
  CLI::App* code = app.add_subcommand("code", "code versions and their deployment to groups");
  code->require_subcommand(1);
  CodeReleaseCommands release;
  release.add(*code);
  CodeQueryCommands query;
  query.add(*code);
  CodeStatusCommand status;
  status.add(*code);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);  // prints help, or the error with a usage hint
    return rc == 0 ? kExitOk : kExitUsage;
  }

  CommandContext ctx{impgate::Home::resolve(homeFlag), currentActor(), currentTimeMs(), std::cout,
                     std::cerr};
  if (caInitCmd->parsed()) {
    return runCaInit(ctx, caInit);
  }
  if (enrollCmd->parsed()) {
    return runDeviceEnroll(ctx, enroll);
  }
  if (listCmd->parsed()) {
    return runDeviceList(ctx, list);
  }
  for (std::optional<int> rc :
       {groups.run(ctx), release.run(ctx), query.run(ctx), status.run(ctx)}) {
    if (rc) {
      return *rc;
    }
  }
  return kExitUsage;  // unreachable: every level requires a subcommand
}

}  // namespace

int main(int argc, char** argv) {
  // The libraries report failures as values; this catches the rest (allocation failure, a
  // current directory that no longer exists) so the operator still gets a message.
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "impctl: error: " << e.what() << "\n";
    return kExitFailed;
  }
}
