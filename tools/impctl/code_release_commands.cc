#include "tools/impctl/code_release_commands.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "bus/fleet/release.h"
#include "gateway/base/pki/code_signing.h"

namespace impgate::impctl {

namespace fleet = bus::fleet;

namespace {

// The file's bytes, refusing what cannot be a code version before reading more than that.
std::optional<std::vector<std::uint8_t>> readCodeFile(const std::string& path, std::string& error) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    error = "cannot deploy " + path + ": it is a directory; name the code file";
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::vector<std::uint8_t> bytes;
  // One byte more than allowed tells "too large" without reading the whole of a huge file.
  const std::size_t limit = static_cast<std::size_t>(fleet::kMaxCodeSize) + 1;
  std::vector<char> buffer(64 * 1024);
  while (bytes.size() < limit && in) {
    in.read(buffer.data(),
            static_cast<std::streamsize>(std::min(buffer.size(), limit - bytes.size())));
    bytes.insert(bytes.end(), buffer.data(), buffer.data() + in.gcount());
  }
  if (in.bad()) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  if (bytes.empty()) {
    error = path + " is empty; a code version is 1 byte to 4 MiB (" +
            std::to_string(fleet::kMaxCodeSize) + " bytes)";
    return std::nullopt;
  }
  if (bytes.size() > fleet::kMaxCodeSize) {
    std::uintmax_t size = std::filesystem::file_size(path, ec);
    error = path + " is " + (ec ? "larger than 4 MiB" : std::to_string(size) + " bytes") +
            "; a code version is at most 4 MiB (" + std::to_string(fleet::kMaxCodeSize) + " bytes)";
    return std::nullopt;
  }
  return bytes;
}

std::string policyText(const storage::RolloutPolicy& p) {
  std::string out = stagesText(p.stages);
  out += p.maxConcurrent == 0
             ? ", no limit on transfers per node"
             : ", at most " + std::to_string(p.maxConcurrent) + " transfers per node";
  if (p.haltFailuresPct >= 100) {
    out += ", never halts";
  } else {
    char buf[64];
    std::snprintf(buf, sizeof buf, ", halts above %g%% failed", p.haltFailuresPct);
    out += buf;
  }
  return out;
}

std::string republishHint(const std::string& group) {
  return "; run `impctl code publish --group " + group +
         "` to publish it again once the broker takes it";
}

// The group's size for the stage targets: what the retained body of this deployment said (so
// that a pause or a republish does not move the targets), else the group's active devices.
std::int64_t stageDevices(FleetBus& bus, const storage::Deployment& d, EVP_PKEY* key,
                          std::int64_t activeDevices) {
  std::optional<fleet::DeploymentBody> retained = retainedDeployment(bus, d.group, key);
  if (retained && retained->deployment == d.number && retained->code == d.codeSha) {
    return retained->devices;
  }
  return activeDevices;
}

// What deploy and rollback share once the version is known: connect, record the deployment,
// publish everything. `version` is checked (size, chunks, signature) by the caller.
struct Release {
  const CommandContext& ctx;
  RegistryHandle& registry;
  EVP_PKEY* key;
  FleetBus& bus;

  int recordAndPublish(const std::string& group, const ReleasedVersion& version,
                       const storage::RolloutPolicy& policy, bool minSupported,
                       const std::string& note, const std::string& heading) {
    storage::Result<std::int64_t> number = registry.code().createDeployment(
        group, version.descriptor.code, policy, minSupported, ctx.actor, note, ctx.nowMs);
    if (!number) {
      return ctx.fail("cannot record the deployment: " + registryError(number.error()));
    }
    return publishRecorded(group, *number, version, heading, "is recorded in the registry");
  }

  // Publishes deployment `number` (recorded already) with its version and assignments.
  int publishRecorded(const std::string& group, std::int64_t number, const ReleasedVersion& version,
                      const std::string& heading, const std::string& recordedAs,
                      bool keepStageDevices = false) {
    const std::string what =
        "deployment " + std::to_string(number) + " of group '" + group + "' " + recordedAs;
    storage::Result<std::optional<storage::Deployment>> d =
        registry.code().deployment(group, number);
    storage::Result<std::optional<storage::GroupInfo>> info = registry.code().group(group);
    storage::Result<std::vector<std::string>> supported = registry.code().supportedCodes(group);
    storage::Result<std::vector<std::string>> devices = registry.code().activeDevices(group);
    for (const storage::Error* e :
         {d ? nullptr : &d.error(), info ? nullptr : &info.error(),
          supported ? nullptr : &supported.error(), devices ? nullptr : &devices.error()}) {
      if (e) return ctx.fail(what + ", but reading it back failed: " + registryError(*e));
    }
    if (!*d || !*info) {
      return ctx.fail(what + ", but is no longer there; another impctl changed the group");
    }
    std::int64_t groupSize = (*info)->activeDevices;
    if (keepStageDevices) groupSize = stageDevices(bus, **d, key, groupSize);
    fleet::DeploymentBody body = deploymentBody(**d, *supported, groupSize);
    if (fleet::Status s = fleet::check(body); !s) {
      return ctx.fail(what + ", but cannot be published: " + s.error().message);
    }
    PublishedCounts counts;
    std::string error;
    if (!publishRelease(bus, version, *devices, body, key, ctx.nowMs, counts, error)) {
      return ctx.fail(what + ", but publishing it failed: " + error + republishHint(group));
    }
    const storage::Deployment& dep = **d;
    ctx.out << heading << "deployment " << dep.number << " of group " << group << "\n"
            << "  code:     " << dep.codeSha << "\n"
            << "  size:     " << dep.codeSize << " bytes, " << version.descriptor.chunks.size()
            << " chunks\n"
            << "  stages:   " << policyText(dep.policy) << "\n"
            << "  devices:  " << body.devices << " (stage targets)";
    if (dep.paused) ctx.out << ", paused";
    ctx.out << "\n";
    if (dep.minSupported) {
      ctx.out << "  min_supported: " << dep.number
              << " (devices running older code must take it)\n";
    }
    ctx.out << "published on " << bus.brokerUri() << ": " << counts.chunks
            << " chunks, the version, " << counts.assignments
            << " group assignments, the deployment\n";
    return kExitOk;
  }
};

struct Opened {
  std::unique_ptr<RegistryHandle> registry;
  pki::PkeyPtr key;
};

// The registry and the signing key, or the exit code of the failure (printed).
std::optional<Opened> openForRelease(const CommandContext& ctx, const std::string& group,
                                     const std::string& signingKey, int& rc) {
  std::string error;
  Opened o;
  o.key = loadSigningKey(ctx, signingKey, error);
  if (!o.key) {
    rc = ctx.fail(error);
    return std::nullopt;
  }
  o.registry = RegistryHandle::open(ctx, error);
  if (!o.registry) {
    rc = ctx.fail(error);
    return std::nullopt;
  }
  storage::Result<bool> exists = o.registry->code().groupExists(group);
  if (!exists) {
    rc = ctx.fail(registryError(exists.error()));
    return std::nullopt;
  }
  if (!*exists) {
    rc = ctx.fail("group '" + group + "' does not exist; create it with `impctl group create " +
                  group + "` (or enroll a device with --group " + group +
                  "); `impctl group list` shows the groups");
    return std::nullopt;
  }
  return o;
}

}  // namespace

int runCodeDeploy(const CommandContext& ctx, const CodeDeployArgs& args) {
  std::string error;
  std::optional<storage::RolloutPolicy> policy = parsePolicy(args.policy, error);
  if (!policy) return ctx.usage(error);
  std::optional<std::vector<std::uint8_t>> code = readCodeFile(args.file, error);
  if (!code) return ctx.fail(error);
  int rc = kExitFailed;
  std::optional<Opened> opened = openForRelease(ctx, args.group, args.signingKey, rc);
  if (!opened) return rc;
  RegistryHandle& registry = *opened->registry;
  EVP_PKEY* key = opened->key.get();

  fleet::VersionDescriptor described =
      fleet::describeVersion(*code, key, args.note, ctx.actor, ctx.nowMs);
  if (described.chunks.size() > fleet::kMaxChunks) {
    return ctx.fail(args.file + " cuts into " + std::to_string(described.chunks.size()) +
                    " chunks; code push allows at most " + std::to_string(fleet::kMaxChunks) +
                    " (content this repetitive cuts near the 512-byte minimum); make the file "
                    "smaller");
  }
  std::unique_ptr<FleetBus> bus = connectBus(args.bus, error);
  if (!bus) return ctx.fail(error + "; nothing was deployed");

  storage::NewCodeVersion stored{described.code, described.size,      args.note,       ctx.actor,
                                 ctx.nowMs,      described.signature, std::move(*code)};
  storage::Result<storage::AddedVersion> added = registry.code().addVersion(stored);
  if (!added) return ctx.fail("cannot store the version: " + registryError(added.error()));
  ReleasedVersion version;
  std::string heading;
  if (added->existed) {
    // Stored by an earlier deploy: publish it as stored (its note, author, time), and only if
    // devices holding this key accept its signature.
    std::optional<ReleasedVersion> existing =
        storedVersion(registry.code(), described.code, key, error);
    if (!existing) return ctx.fail(error + "; nothing was deployed");
    version = std::move(*existing);
    heading = "version " + described.code.substr(0, 12) + " was stored already (" +
              utcTime(version.descriptor.createdAtMs) + "); ";
  } else {
    version.descriptor = std::move(described);
    version.content = std::move(stored.content);
  }
  Release release{ctx, registry, key, *bus};
  return release.recordAndPublish(args.group, version, *policy, args.minSupported, args.note,
                                  heading);
}

int runCodeRollback(const CommandContext& ctx, const CodeRollbackArgs& args) {
  std::string error;
  std::optional<storage::RolloutPolicy> policy = parsePolicy(args.policy, error);
  if (!policy) return ctx.usage(error);
  int rc = kExitFailed;
  std::optional<Opened> opened = openForRelease(ctx, args.group, args.signingKey, rc);
  if (!opened) return rc;
  RegistryHandle& registry = *opened->registry;
  EVP_PKEY* key = opened->key.get();

  storage::Result<storage::Deployment> target = registry.code().rollbackTarget(args.group, args.to);
  if (!target) return ctx.fail(registryError(target.error()));
  std::optional<ReleasedVersion> version =
      storedVersion(registry.code(), target->codeSha, key, error);
  if (!version) return ctx.fail(error + "; nothing was rolled back");
  std::unique_ptr<FleetBus> bus = connectBus(args.bus, error);
  if (!bus) return ctx.fail(error + "; nothing was rolled back");

  std::string note =
      args.note.empty() ? "rollback to deployment " + std::to_string(target->number) : args.note;
  Release release{ctx, registry, key, *bus};
  return release.recordAndPublish(
      args.group, *version, *policy, args.minSupported, note,
      "rollback to deployment " + std::to_string(target->number) + ": ");
}

namespace {

// The group's latest deployment, or the failure printed.
std::optional<storage::Deployment> latestOf(const CommandContext& ctx, RegistryHandle& registry,
                                            const std::string& group, int& rc) {
  storage::Result<std::optional<storage::Deployment>> latest =
      registry.code().latestDeployment(group);
  if (!latest) {
    rc = ctx.fail(registryError(latest.error()));
    return std::nullopt;
  }
  if (!*latest) {
    rc = ctx.fail("group '" + group +
                  "' has no deployment yet; deploy code with `impctl code "
                  "deploy FILE --group " +
                  group + "`");
    return std::nullopt;
  }
  return std::move(**latest);
}

}  // namespace

int runCodePublish(const CommandContext& ctx, const CodeGroupArgs& args) {
  int rc = kExitFailed;
  std::optional<Opened> opened = openForRelease(ctx, args.group, args.signingKey, rc);
  if (!opened) return rc;
  std::optional<storage::Deployment> latest = latestOf(ctx, *opened->registry, args.group, rc);
  if (!latest) return rc;
  std::string error;
  std::optional<ReleasedVersion> version =
      storedVersion(opened->registry->code(), latest->codeSha, opened->key.get(), error);
  if (!version) return ctx.fail(error);
  std::unique_ptr<FleetBus> bus = connectBus(args.bus, error);
  if (!bus) return ctx.fail(error);
  Release release{ctx, *opened->registry, opened->key.get(), *bus};
  return release.publishRecorded(args.group, latest->number, *version,
                                 "published again: ", "is recorded in the registry", true);
}

namespace {

// Pause or resume: change the latest deployment in the registry, then publish its body again.
int changeAndRepublish(const CommandContext& ctx, const CodeGroupArgs& args, bool resume) {
  int rc = kExitFailed;
  std::optional<Opened> opened = openForRelease(ctx, args.group, args.signingKey, rc);
  if (!opened) return rc;
  RegistryHandle& registry = *opened->registry;
  EVP_PKEY* key = opened->key.get();
  std::optional<storage::Deployment> latest = latestOf(ctx, registry, args.group, rc);
  if (!latest) return rc;
  std::string error;
  std::unique_ptr<FleetBus> bus = connectBus(args.bus, error);
  if (!bus) return ctx.fail(error + "; nothing was changed");

  const bool wasPaused = latest->paused;
  storage::Result<storage::Deployment> changed =
      resume ? registry.code().bumpResume(args.group, latest->number, ctx.nowMs, ctx.actor)
             : registry.code().setPaused(args.group, latest->number, true, ctx.nowMs, ctx.actor);
  if (!changed) return ctx.fail(registryError(changed.error()));
  const std::string what = "deployment " + std::to_string(changed->number) + " of group '" +
                           args.group + "' is " +
                           (resume ? "resumed (resume " + std::to_string(changed->resume) + ")"
                                   : std::string("paused")) +
                           " in the registry";
  storage::Result<std::optional<storage::GroupInfo>> info = registry.code().group(args.group);
  storage::Result<std::vector<std::string>> supported = registry.code().supportedCodes(args.group);
  if (!info || !*info || !supported) {
    return ctx.fail(what + ", but reading the group back failed" + republishHint(args.group));
  }
  fleet::DeploymentBody body = deploymentBody(
      *changed, *supported, stageDevices(*bus, *changed, key, (*info)->activeDevices));
  fleet::Publication publication = fleet::deploymentPublication(bus->topics(), body, key);
  if (BusStatus s = bus->publishRetained(publication.topic, publication.payload); !s) {
    return ctx.fail(what + ", but publishing the change failed: " + s.error().message +
                    republishHint(args.group));
  }
  if (resume) {
    ctx.out << "resumed deployment " << changed->number << " of group " << args.group << " (resume "
            << changed->resume << (wasPaused ? ", was paused" : "")
            << "): halted nodes continue and devices that failed before are offered it again\n";
  } else {
    ctx.out << "paused deployment " << changed->number << " of group " << args.group
            << (wasPaused ? " (it was paused already)" : "")
            << ": nodes start no new transfers; running ones finish\n";
  }
  return kExitOk;
}

void addSigningKeyOption(CLI::App& command, std::string& path) {
  command.add_option("--signing-key", path,
                     "the fleet's code-signing key (Ed25519 PEM; default: the home's "
                     "ca/code-signing.key)");
}

void addPolicyOptions(CLI::App& command, PolicyFlags& policy) {
  command.add_option("--stage", policy.stages,
                     "rollout stages as percentages of the group, the last 100 (e.g. "
                     "1%,10%,100%; default 100%)");
  command.add_option("--max-concurrent", policy.maxConcurrent,
                     "transfers at a time per gateway node (default 0: no limit)");
  command.add_option("--halt-failures", policy.haltFailures,
                     "halt the rollout when more than PCT percent of a stage failed "
                     "(default 100: never)");
}

}  // namespace

int runCodePause(const CommandContext& ctx, const CodeGroupArgs& args) {
  return changeAndRepublish(ctx, args, false);
}

int runCodeResume(const CommandContext& ctx, const CodeGroupArgs& args) {
  return changeAndRepublish(ctx, args, true);
}

void CodeReleaseCommands::add(CLI::App& code) {
  deployCmd = code.add_subcommand(
      "deploy", "store a version, record the group's next deployment of it and publish it");
  deployCmd->add_option("file", deploy.file, "the code file (1 byte to 4 MiB)")->required();
  deployCmd->add_option("--group", deploy.group, "the group to deploy to")->required();
  deployCmd->add_option("--note", deploy.note, "what this version changes (shown in history)");
  deployCmd->add_flag("--min-supported", deploy.minSupported,
                      "devices running older code must take this one at once (no deferring)");
  addPolicyOptions(*deployCmd, deploy.policy);
  addSigningKeyOption(*deployCmd, deploy.signingKey);
  addBusOptions(*deployCmd, deploy.bus);

  rollbackCmd = code.add_subcommand(
      "rollback", "deploy an earlier version again (a new deployment with its own number)");
  rollbackCmd->add_option("--group", rollback.group, "the group")->required();
  rollbackCmd->add_option("--to", rollbackTo,
                          "the deployment whose version to deploy (default: the last one "
                          "with other code than the current)");
  rollbackCmd->add_option("--note", rollback.note, "default: rollback to deployment N");
  rollbackCmd->add_flag("--min-supported", rollback.minSupported,
                        "devices running other code must take it at once (no deferring)");
  addPolicyOptions(*rollbackCmd, rollback.policy);
  addSigningKeyOption(*rollbackCmd, rollback.signingKey);
  addBusOptions(*rollbackCmd, rollback.bus);

  publishCmd = code.add_subcommand(
      "publish",
      "publish the group's latest deployment again (its version, chunks and group "
      "assignments), e.g. after a deploy whose publish failed");
  publishCmd->add_option("--group", publish.group, "the group")->required();
  addSigningKeyOption(*publishCmd, publish.signingKey);
  addBusOptions(*publishCmd, publish.bus);

  pauseCmd = code.add_subcommand(
      "pause", "stop new transfers of the group's latest deployment (running ones finish)");
  pauseCmd->add_option("--group", pause.group, "the group")->required();
  addSigningKeyOption(*pauseCmd, pause.signingKey);
  addBusOptions(*pauseCmd, pause.bus);

  resumeCmd = code.add_subcommand(
      "resume",
      "continue the group's latest deployment: unpause, lift a halt, offer it again "
      "to devices that failed");
  resumeCmd->add_option("--group", resume.group, "the group")->required();
  addSigningKeyOption(*resumeCmd, resume.signingKey);
  addBusOptions(*resumeCmd, resume.bus);
}

std::optional<int> CodeReleaseCommands::run(const CommandContext& ctx) {
  if (rollbackCmd->parsed() && rollbackCmd->count("--to") > 0) rollback.to = rollbackTo;
  if (deployCmd->parsed()) return runCodeDeploy(ctx, deploy);
  if (rollbackCmd->parsed()) return runCodeRollback(ctx, rollback);
  if (publishCmd->parsed()) return runCodePublish(ctx, publish);
  if (pauseCmd->parsed()) return runCodePause(ctx, pause);
  if (resumeCmd->parsed()) return runCodeResume(ctx, resume);
  return std::nullopt;
}

}  // namespace impgate::impctl
