#include "tools/impctl/code_query_commands.h"

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "tools/impctl/code_push_support.h"
#include "tools/impctl/table.h"

namespace impgate::impctl {

int runCodeList(const CommandContext& ctx, const CodeListArgs& args) {
  std::string error;
  std::unique_ptr<RegistryHandle> registry = RegistryHandle::open(ctx, error);
  if (!registry) return ctx.fail(error);
  storage::Result<std::vector<storage::CodeVersion>> versions = registry->code().listVersions();
  if (!versions) return ctx.fail(registryError(versions.error()));
  storage::Result<std::vector<storage::GroupInfo>> groups = registry->code().listGroups();
  if (!groups) return ctx.fail(registryError(groups.error()));
  // Which groups each version is the live target of.
  std::map<std::string, std::vector<std::string>> targetOf;
  for (const storage::GroupInfo& g : *groups) {
    storage::Result<std::optional<storage::Deployment>> latest =
        registry->code().latestDeployment(g.name);
    if (!latest) return ctx.fail(registryError(latest.error()));
    if (*latest) targetOf[(*latest)->codeSha].push_back(g.name);
  }
  nlohmann::json json = nlohmann::json::array();
  Table table({"CODE", "SIZE", "CREATED", "AUTHOR", "TARGET OF", "NOTE"});
  for (const storage::CodeVersion& v : *versions) {
    const std::vector<std::string>& groupsOf = targetOf[v.sha];
    json.push_back({{"code", v.sha},
                    {"size", v.size},
                    {"note", v.note},
                    {"author", v.author},
                    {"created_at", v.createdAtMs},
                    {"groups", groupsOf}});
    std::string targets;
    for (const std::string& g : groupsOf) targets += (targets.empty() ? "" : ",") + g;
    table.add({v.sha.substr(0, 12), std::to_string(v.size), utcTime(v.createdAtMs), v.author,
               targets.empty() ? "-" : targets, v.note});
  }
  if (args.json) {
    ctx.out << json.dump(2) << "\n";
  } else {
    table.print(ctx.out);
  }
  return kExitOk;
}

int runCodeHistory(const CommandContext& ctx, const CodeHistoryArgs& args) {
  std::string error;
  std::unique_ptr<RegistryHandle> registry = RegistryHandle::open(ctx, error);
  if (!registry) return ctx.fail(error);
  storage::Result<std::vector<storage::Deployment>> deployments =
      registry->code().listDeployments(args.group);
  if (!deployments) {
    if (deployments.error().code == storage::ErrorCode::kNotFound) {
      return ctx.fail(deployments.error().message + "; `impctl group list` shows the groups");
    }
    return ctx.fail(registryError(deployments.error()));
  }
  nlohmann::json json = nlohmann::json::array();
  Table table({"#", "CODE", "CREATED", "AUTHOR", "STAGES", "MAX", "HALT%", "PAUSED", "RESUMES",
               "MARKS", "NOTE"});
  for (const storage::Deployment& d : *deployments) {
    json.push_back({{"deployment", d.number},
                    {"code", d.codeSha},
                    {"size", d.codeSize},
                    {"created_at", d.createdAtMs},
                    {"author", d.author},
                    {"note", d.note},
                    {"stages", d.policy.stages},
                    {"max_concurrent", d.policy.maxConcurrent},
                    {"halt_failures", d.policy.haltFailuresPct},
                    {"paused", d.paused},
                    {"resume", d.resume},
                    {"min_supported", d.minSupported},
                    {"flagged", d.flagged}});
    char halt[32];
    std::snprintf(halt, sizeof halt, "%g", d.policy.haltFailuresPct);
    std::string marks;
    if (d.minSupported) marks += "min_supported";
    if (d.flagged) marks += std::string(marks.empty() ? "" : ",") + "flagged";
    table.add({std::to_string(d.number), d.codeSha.substr(0, 12), utcTime(d.createdAtMs), d.author,
               stagesText(d.policy.stages), std::to_string(d.policy.maxConcurrent), halt,
               d.paused ? "yes" : "-", std::to_string(d.resume), marks.empty() ? "-" : marks,
               d.note});
  }
  if (args.json) {
    ctx.out << json.dump(2) << "\n";
  } else {
    table.print(ctx.out);
  }
  return kExitOk;
}

void CodeQueryCommands::add(CLI::App& code) {
  listCmd = code.add_subcommand("list", "list the stored code versions");
  listCmd->add_flag("--json", list.json,
                    "print a JSON array of {code, size, note, author, created_at, groups}");
  historyCmd = code.add_subcommand("history", "list a group's deployments, oldest first");
  historyCmd->add_option("--group", history.group, "the group")->required();
  historyCmd->add_flag("--json", history.json, "print a JSON array (docs/code-push.md)");
}

std::optional<int> CodeQueryCommands::run(const CommandContext& ctx) {
  if (listCmd->parsed()) return runCodeList(ctx, list);
  if (historyCmd->parsed()) return runCodeHistory(ctx, history);
  return std::nullopt;
}

}  // namespace impgate::impctl
