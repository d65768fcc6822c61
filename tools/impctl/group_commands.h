// `impctl group create|list` and `impctl device move`: the device groups code is deployed to.
// Groups live in the home's registry (`device enroll --group` creates them too); `device move`
// also publishes the device's signed group assignment, so the nodes push it its new group's
// target without a new certificate.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "tools/impctl/command_context.h"
#include "tools/impctl/fleet_bus.h"

namespace impgate::impctl {

struct GroupCreateArgs {
  std::string name;
};

struct GroupListArgs {
  bool json = false;
};

struct DeviceMoveArgs {
  std::string id;
  std::string group;
  std::string signingKey;  // empty: the home's ca/code-signing.key
  BusOptions bus;
};

int runGroupCreate(const CommandContext& ctx, const GroupCreateArgs& args);
int runGroupList(const CommandContext& ctx, const GroupListArgs& args);
int runDeviceMove(const CommandContext& ctx, const DeviceMoveArgs& args);

struct GroupCommands {
  GroupCreateArgs create;
  GroupListArgs list;
  DeviceMoveArgs move;
  CLI::App* createCmd = nullptr;
  CLI::App* listCmd = nullptr;
  CLI::App* moveCmd = nullptr;

  // `group create`, `group list` on `app`; `move` on `device`.
  void add(CLI::App& app, CLI::App& device);
  std::optional<int> run(const CommandContext& ctx);
};

}  // namespace impgate::impctl
