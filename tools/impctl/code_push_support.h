// What the code-push commands of impctl (`code ...`, `group ...`, `device move`) share: the
// home's registry opened for one run, the signing key, the rollout policy as typed on the
// command line, and the release (a version, its chunks, the group's assignments and the signed
// deployment) built from the registry and published on the bus in the order nodes rely on.
//
// Everything runs on the command's one thread; nothing here outlives the command run.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bus/fleet/descriptors.h"
#include "bus/fleet/release.h"
#include "gateway/base/pki/openssl_ptr.h"
#include "storage/code_registry.h"
#include "storage/database.h"
#include "storage/device_registry.h"
#include "tools/impctl/command_context.h"
#include "tools/impctl/fleet_bus.h"

namespace impgate::impctl {

// The home's database (migrated on open) with the code and device registries over it. Held by
// pointer so that the Database never moves while the registries borrow it.
class RegistryHandle {
 public:
  // Fails (message for the operator) when the home or its database does not exist ("run
  // `impctl ca init` first"); never creates a database in a home nobody set up.
  static std::unique_ptr<RegistryHandle> open(const CommandContext& ctx, std::string& error);

  storage::CodeRegistry& code() { return *code_; }
  storage::DeviceRegistry& devices() { return *devices_; }

  explicit RegistryHandle(storage::Database db) : db_(std::move(db)) {}

 private:
  storage::Database db_;
  std::optional<storage::CodeRegistry> code_;
  std::optional<storage::DeviceRegistry> devices_;
};

// A storage error as the operator reads it. A write that waited for another impctl (a deploy
// to the same group at once) and gave up says so and that nothing was recorded.
std::string registryError(const storage::Error& error);

// "2026-12-01T06:03:00Z"
std::string utcTime(std::int64_t ms);

// The rollout flags shared by `code deploy` and `code rollback`, as typed.
struct PolicyFlags {
  std::string stages = "100%";  // "1%,10%,100%" or "1,10,100"
  std::int64_t maxConcurrent = 0;
  std::string haltFailures = "100";  // percent, "5" or "5%"
};

// The policy, or nullopt with `error` naming the flag that is wrong.
std::optional<storage::RolloutPolicy> parsePolicy(const PolicyFlags& flags, std::string& error);
// "1%,10%,100%"
std::string stagesText(const std::vector<int>& stages);

// The Ed25519 private key in `path` (empty: the home's ca/code-signing.key), or nullptr with
// `error` saying which file and what to do.
pki::PkeyPtr loadSigningKey(const CommandContext& ctx, const std::string& path, std::string& error);

// Connects to the broker; nullptr with `error` ("cannot connect to the broker at ...").
std::unique_ptr<FleetBus> connectBus(const BusOptions& options, std::string& error);

// The deployment body nodes act on, from the registry's record.
bus::fleet::DeploymentBody deploymentBody(const storage::Deployment& deployment,
                                          std::vector<std::string> supported, std::int64_t devices);

// A version as published: its descriptor and its bytes.
struct ReleasedVersion {
  bus::fleet::VersionDescriptor descriptor;
  std::vector<std::uint8_t> content;
};

// The stored version `sha` as a descriptor to publish, its stored signature checked against
// `signingKey` (a version stored under a replaced key is refused, saying so).
std::optional<ReleasedVersion> storedVersion(storage::CodeRegistry& registry, std::string_view sha,
                                             EVP_PKEY* signingKey, std::string& error);

// What publishRelease() sent, for the command's output.
struct PublishedCounts {
  std::size_t chunks = 0;
  std::size_t assignments = 0;
};

// Publishes, retained and acknowledged, in this order: every chunk of the version and its
// descriptor, the signed group assignment of each of `devices`, and last the signed
// deployment, so that a node that sees the deployment finds everything it names. false with
// `error` (the bus's message) when the broker did not take all of it.
bool publishRelease(FleetBus& bus, const ReleasedVersion& version,
                    const std::vector<std::string>& devices, const bus::fleet::DeploymentBody& body,
                    EVP_PKEY* signingKey, std::int64_t nowMs, PublishedCounts& counts,
                    std::string& error);

// The group's latest deployment as retained on the broker, if one is there whose envelope
// verifies against `key` (nullopt otherwise, also when it cannot be read).
std::optional<bus::fleet::DeploymentBody> retainedDeployment(FleetBus& bus, std::string_view group,
                                                             EVP_PKEY* key);

}  // namespace impgate::impctl
