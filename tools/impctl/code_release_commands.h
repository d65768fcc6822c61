// `impctl code deploy|rollback|publish|pause|resume`: the commands that change what a group
// runs. Each records the change in the home's registry and then publishes it on the bus
// (docs/code-push.md; the topics in docs/topics.md, "Code push"): the version's chunks and
// descriptor, the group assignment of each of the group's devices, and last the signed
// deployment. The broker is connected to before the registry is written, so an unreachable
// broker changes nothing; a publish that fails after the write says the change is recorded and
// that `code publish --group G` publishes it again.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "tools/impctl/code_push_support.h"
#include "tools/impctl/command_context.h"
#include "tools/impctl/fleet_bus.h"

namespace impgate::impctl {

struct CodeDeployArgs {
  std::string file;
  std::string group;
  std::string note;
  bool minSupported = false;
  PolicyFlags policy;
  std::string signingKey;  // empty: the home's ca/code-signing.key
  BusOptions bus;
};

struct CodeRollbackArgs {
  std::string group;
  std::optional<std::int64_t> to;  // nullopt: the version before the current one
  std::string note;
  bool minSupported = false;
  PolicyFlags policy;
  std::string signingKey;
  BusOptions bus;
};

// `code publish`, `code pause`, `code resume`: a group's latest deployment.
struct CodeGroupArgs {
  std::string group;
  std::string signingKey;
  BusOptions bus;
};

int runCodeDeploy(const CommandContext& ctx, const CodeDeployArgs& args);
int runCodeRollback(const CommandContext& ctx, const CodeRollbackArgs& args);
int runCodePublish(const CommandContext& ctx, const CodeGroupArgs& args);
int runCodePause(const CommandContext& ctx, const CodeGroupArgs& args);
int runCodeResume(const CommandContext& ctx, const CodeGroupArgs& args);

// The five subcommands on `code`, and which one ran.
struct CodeReleaseCommands {
  CodeDeployArgs deploy;
  CodeRollbackArgs rollback;
  std::int64_t rollbackTo = 0;  // --to, when given
  CodeGroupArgs publish;
  CodeGroupArgs pause;
  CodeGroupArgs resume;
  CLI::App* deployCmd = nullptr;
  CLI::App* rollbackCmd = nullptr;
  CLI::App* publishCmd = nullptr;
  CLI::App* pauseCmd = nullptr;
  CLI::App* resumeCmd = nullptr;

  void add(CLI::App& code);
  // The exit code of the subcommand that was parsed; nullopt when none of these was.
  std::optional<int> run(const CommandContext& ctx);
};

}  // namespace impgate::impctl
