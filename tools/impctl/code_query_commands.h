// `impctl code list` and `impctl code history --group G`: what the home's registry holds about
// code versions and a group's deployments. Read only; no broker needed.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "tools/impctl/command_context.h"

namespace impgate::impctl {

struct CodeListArgs {
  bool json = false;
};

struct CodeHistoryArgs {
  std::string group;
  bool json = false;
};

int runCodeList(const CommandContext& ctx, const CodeListArgs& args);
int runCodeHistory(const CommandContext& ctx, const CodeHistoryArgs& args);

struct CodeQueryCommands {
  CodeListArgs list;
  CodeHistoryArgs history;
  CLI::App* listCmd = nullptr;
  CLI::App* historyCmd = nullptr;

  void add(CLI::App& code);
  std::optional<int> run(const CommandContext& ctx);
};

}  // namespace impgate::impctl
