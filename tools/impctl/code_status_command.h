// `impctl code status --group G`: where the group's latest deployment stands, from what the
// gateway nodes retain on the bus (docs/topics.md, "Code push"): each device's code state
// (<prefix>/dev/+/code), the code each device runs (its presence, <prefix>/dev/+/state), and
// each node's rollout view (<prefix>/grp/G/rollout/+). Every device state read is copied into
// the registry's push history, so the registry agrees with what the devices reported.
//
// --watch redraws a progress bar every second on a terminal until the rollout settles (or
// Ctrl-C); --until-done S polls until it is done or S seconds pass, for scripts. The output
// (text, and the --json object) is documented in docs/code-push.md.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "tools/impctl/command_context.h"
#include "tools/impctl/fleet_bus.h"

namespace impgate::impctl {

struct CodeStatusArgs {
  std::string group;
  bool json = false;
  bool watch = false;
  std::int64_t untilDoneSeconds = -1;  // -1: not asked
  BusOptions bus;
};

int runCodeStatus(const CommandContext& ctx, const CodeStatusArgs& args);

struct CodeStatusCommand {
  CodeStatusArgs args;
  CLI::App* cmd = nullptr;

  void add(CLI::App& code);
  std::optional<int> run(const CommandContext& ctx);
};

}  // namespace impgate::impctl
