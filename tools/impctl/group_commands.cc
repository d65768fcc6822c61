#include "tools/impctl/group_commands.h"

#include <nlohmann/json.hpp>

#include "bus/fleet/release.h"
#include "tools/impctl/code_push_support.h"
#include "tools/impctl/table.h"

namespace impgate::impctl {

namespace fleet = bus::fleet;

int runGroupCreate(const CommandContext& ctx, const GroupCreateArgs& args) {
  std::string error;
  std::unique_ptr<RegistryHandle> registry = RegistryHandle::open(ctx, error);
  if (!registry) return ctx.fail(error);
  if (storage::Status s = registry->code().createGroup(args.name, ctx.nowMs, ctx.actor); !s) {
    if (s.error().code == storage::ErrorCode::kInvalidName) {
      return ctx.fail(s.error().message);
    }
    return ctx.fail(registryError(s.error()));
  }
  ctx.out << "created group " << args.name
          << " (enroll devices into it with `impctl device enroll ID --group " << args.name
          << "` or move them with `impctl device move ID --group " << args.name << "`)\n";
  return kExitOk;
}

int runGroupList(const CommandContext& ctx, const GroupListArgs& args) {
  std::string error;
  std::unique_ptr<RegistryHandle> registry = RegistryHandle::open(ctx, error);
  if (!registry) return ctx.fail(error);
  storage::Result<std::vector<storage::GroupInfo>> groups = registry->code().listGroups();
  if (!groups) return ctx.fail(registryError(groups.error()));
  nlohmann::json json = nlohmann::json::array();
  Table table({"GROUP", "DEVICES", "ACTIVE", "DEPLOYMENT", "CODE", "MIN_SUPPORTED"});
  for (const storage::GroupInfo& g : *groups) {
    storage::Result<std::optional<storage::Deployment>> latest =
        registry->code().latestDeployment(g.name);
    if (!latest) return ctx.fail(registryError(latest.error()));
    const storage::Deployment* d = *latest ? &**latest : nullptr;
    json.push_back({{"name", g.name},
                    {"devices", g.devices},
                    {"active_devices", g.activeDevices},
                    {"created_at", g.createdAtMs},
                    {"deployment", d ? nlohmann::json(d->number) : nlohmann::json(nullptr)},
                    {"code", d ? nlohmann::json(d->codeSha) : nlohmann::json(nullptr)},
                    {"min_supported",
                     g.minSupported ? nlohmann::json(*g.minSupported) : nlohmann::json(nullptr)}});
    table.add({g.name, std::to_string(g.devices), std::to_string(g.activeDevices),
               d ? std::to_string(d->number) : "-", d ? d->codeSha.substr(0, 12) : "-",
               g.minSupported ? std::to_string(*g.minSupported) : "-"});
  }
  if (args.json) {
    ctx.out << json.dump(2) << "\n";
  } else {
    table.print(ctx.out);
  }
  return kExitOk;
}

int runDeviceMove(const CommandContext& ctx, const DeviceMoveArgs& args) {
  std::string error;
  pki::PkeyPtr key = loadSigningKey(ctx, args.signingKey, error);
  if (!key) return ctx.fail(error);
  std::unique_ptr<RegistryHandle> registry = RegistryHandle::open(ctx, error);
  if (!registry) return ctx.fail(error);
  // Refusals the registry would give come before the broker is touched.
  storage::Result<std::optional<storage::DeviceRecord>> device = registry->devices().find(args.id);
  if (!device) return ctx.fail(registryError(device.error()));
  if (!*device) {
    return ctx.fail("device '" + args.id +
                    "' is not enrolled; `impctl device list` shows the "
                    "enrolled devices");
  }
  storage::Result<bool> exists = registry->code().groupExists(args.group);
  if (!exists) return ctx.fail(registryError(exists.error()));
  if (!*exists) {
    return ctx.fail("group '" + args.group +
                    "' does not exist; create it with `impctl group "
                    "create " +
                    args.group + "`");
  }
  std::unique_ptr<FleetBus> bus = connectBus(args.bus, error);
  if (!bus) return ctx.fail(error + "; the device was not moved");
  storage::Result<std::string> from =
      registry->code().moveDevice(args.id, args.group, ctx.nowMs, ctx.actor);
  if (!from) return ctx.fail(registryError(from.error()));
  fleet::Publication assignment = fleet::assignmentPublication(
      bus->topics(), fleet::GroupAssignment{args.id, args.group, ctx.nowMs}, key.get());
  if (BusStatus s = bus->publishRetained(assignment.topic, assignment.payload); !s) {
    return ctx.fail("device '" + args.id + "' is in group '" + args.group +
                    "' in the registry, but publishing its group assignment failed: " +
                    s.error().message + "; run this command again once the broker takes it");
  }
  if (*from == args.group) {
    ctx.out << args.id << " is in group " << args.group
            << " already; its group assignment was published again\n";
  } else {
    ctx.out << "moved " << args.id << " from group " << *from << " to " << args.group
            << "; published its group assignment on " << bus->brokerUri()
            << " (the nodes offer it the group's target)\n";
  }
  return kExitOk;
}

void GroupCommands::add(CLI::App& app, CLI::App& device) {
  CLI::App* group = app.add_subcommand("group", "device groups (what code is deployed to)");
  group->require_subcommand(1);
  createCmd = group->add_subcommand("create", "create an empty device group");
  createCmd->add_option("name", create.name, "group name: 1-64 of A-Z a-z 0-9 . _ -")->required();
  listCmd = group->add_subcommand("list", "list the groups with their devices and targets");
  listCmd->add_flag("--json", list.json,
                    "print a JSON array of {name, devices, active_devices, created_at, "
                    "deployment, code, min_supported}");

  moveCmd = device.add_subcommand(
      "move", "move a device into another group and publish its signed group assignment");
  moveCmd->add_option("id", move.id, "the device id")->required();
  moveCmd->add_option("--group", move.group, "the group to move it to")->required();
  moveCmd->add_option("--signing-key", move.signingKey,
                      "the fleet's code-signing key (default: the home's ca/code-signing.key)");
  addBusOptions(*moveCmd, move.bus);
}

std::optional<int> GroupCommands::run(const CommandContext& ctx) {
  if (createCmd->parsed()) return runGroupCreate(ctx, create);
  if (listCmd->parsed()) return runGroupList(ctx, list);
  if (moveCmd->parsed()) return runDeviceMove(ctx, move);
  return std::nullopt;
}

}  // namespace impgate::impctl
