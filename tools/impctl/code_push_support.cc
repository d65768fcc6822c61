#include "tools/impctl/code_push_support.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <system_error>

#include "bus/fleet/envelope.h"
#include "bus/topics/topic_scheme.h"
#include "gateway/base/code/hex.h"
#include "gateway/base/code/manifest.h"
#include "gateway/base/pki/code_signing.h"

namespace impgate::impctl {

namespace fleet = bus::fleet;

std::unique_ptr<RegistryHandle> RegistryHandle::open(const CommandContext& ctx,
                                                     std::string& error) {
  std::error_code ec;
  if (!std::filesystem::is_directory(ctx.home.root(), ec)) {
    error = "no impgate home at " + ctx.home.root().string() +
            (ec ? " (" + ec.message() + ")" : "") + "; run `impctl ca init` first";
    return nullptr;
  }
  storage::Result<storage::Database> db =
      storage::Database::open(ctx.home.database(), storage::OpenMode::kExisting);
  if (!db) {
    error = db.error().message;
    if (db.error().code == storage::ErrorCode::kNotFound) {
      error += "; run `impctl ca init` first";
    }
    return nullptr;
  }
  auto handle = std::make_unique<RegistryHandle>(std::move(db).value());
  storage::Result<storage::CodeRegistry> code = storage::CodeRegistry::open(handle->db_);
  if (!code) {
    error = code.error().message;
    return nullptr;
  }
  handle->code_.emplace(std::move(code).value());
  storage::Result<storage::DeviceRegistry> devices = storage::DeviceRegistry::open(handle->db_);
  if (!devices) {
    error = devices.error().message;
    return nullptr;
  }
  handle->devices_.emplace(std::move(devices).value());
  return handle;
}

std::string registryError(const storage::Error& error) {
  if (error.code == storage::ErrorCode::kSqlite &&
      (error.message.find("locked") != std::string::npos ||
       error.message.find("busy") != std::string::npos)) {
    return "the registry is busy: another impctl (a deploy to the same group?) held it for " +
           std::to_string(storage::Database::kBusyTimeoutMs / 1000) +
           " s; nothing was recorded, try again (" + error.message + ")";
  }
  return error.message;
}

std::string utcTime(std::int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// "5", "5%", "2.5": a percentage 0..100.
std::optional<double> parsePercent(std::string_view text) {
  text = trim(text);
  if (!text.empty() && text.back() == '%') text.remove_suffix(1);
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
      !std::isfinite(value) || value < 0 || value > 100) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

std::optional<storage::RolloutPolicy> parsePolicy(const PolicyFlags& flags, std::string& error) {
  storage::RolloutPolicy policy;
  policy.stages.clear();
  std::string_view rest = flags.stages;
  while (true) {
    std::size_t comma = rest.find(',');
    std::string_view item = trim(rest.substr(0, comma));
    if (!item.empty() && item.back() == '%') item.remove_suffix(1);
    int pct = 0;
    auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), pct);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size()) {
      error = "--stage '" + flags.stages +
              "' is not a list of percentages like 1%,10%,100% (or 1,10,100)";
      return std::nullopt;
    }
    policy.stages.push_back(pct);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (policy.stages.size() > fleet::kMaxStages) {
    error = "--stage '" + flags.stages + "' has " + std::to_string(policy.stages.size()) +
            " stages; at most " + std::to_string(fleet::kMaxStages) + " are allowed";
    return std::nullopt;
  }
  if (flags.maxConcurrent < 0 || flags.maxConcurrent > UINT32_MAX) {
    error = "--max-concurrent must be 0 (no limit) or a positive number of transfers per node";
    return std::nullopt;
  }
  policy.maxConcurrent = flags.maxConcurrent;
  std::optional<double> halt = parsePercent(flags.haltFailures);
  if (!halt) {
    error = "--halt-failures '" + flags.haltFailures + "' is not a percentage from 0 to 100";
    return std::nullopt;
  }
  policy.haltFailuresPct = *halt;
  if (std::optional<std::string> problem = storage::policyProblem(policy)) {
    error = "--stage '" + flags.stages + "': " + *problem;
    return std::nullopt;
  }
  return policy;
}

std::string stagesText(const std::vector<int>& stages) {
  std::string out;
  for (int s : stages) {
    if (!out.empty()) out += ',';
    out += std::to_string(s) + '%';
  }
  return out;
}

pki::PkeyPtr loadSigningKey(const CommandContext& ctx, const std::string& path,
                            std::string& error) {
  const bool fromHome = path.empty();
  std::filesystem::path file = fromHome ? ctx.home.codeSigningKey() : std::filesystem::path(path);
  pki::Result<pki::PkeyPtr> key = pki::readSigningKey(file);
  if (!key) {
    if (key.error().code == pki::ErrorCode::kNotFound) {
      error = "no code-signing key at " + file.string() +
              (fromHome ? "; run `impctl ca init` to create one, or pass --signing-key FILE "
                          "if the key is kept elsewhere"
                        : "; --signing-key must name the fleet's code-signing key "
                          "(a PKCS#8 PEM Ed25519 private key, ca/code-signing.key)");
    } else {
      error = key.error().message + " (--signing-key must name the fleet's Ed25519 private key)";
    }
    return nullptr;
  }
  return std::move(key).value();
}

std::unique_ptr<FleetBus> connectBus(const BusOptions& options, std::string& error) {
  BusResult<std::unique_ptr<FleetBus>> bus = FleetBus::connect(options);
  if (!bus) {
    error = bus.error().message;
    return nullptr;
  }
  return std::move(bus).value();
}

fleet::DeploymentBody deploymentBody(const storage::Deployment& d,
                                     std::vector<std::string> supported, std::int64_t devices) {
  fleet::DeploymentBody body;
  body.group = d.group;
  body.deployment = static_cast<uint32_t>(d.number);
  body.code = d.codeSha;
  body.size = static_cast<uint32_t>(d.codeSize);
  body.supported = std::move(supported);
  body.stages.assign(d.policy.stages.begin(), d.policy.stages.end());
  body.maxConcurrent = static_cast<uint32_t>(d.policy.maxConcurrent);
  body.haltFailures = d.policy.haltFailuresPct;
  body.devices = static_cast<uint32_t>(std::max<std::int64_t>(devices, 0));
  body.paused = d.paused;
  body.resume = static_cast<uint32_t>(d.resume);
  body.createdAtMs = d.createdAtMs;
  body.author = d.author;
  body.note = d.note;
  return body;
}

std::optional<ReleasedVersion> storedVersion(storage::CodeRegistry& registry, std::string_view sha,
                                             EVP_PKEY* signingKey, std::string& error) {
  storage::Result<std::optional<storage::CodeVersion>> stored = registry.version(sha);
  if (!stored) {
    error = registryError(stored.error());
    return std::nullopt;
  }
  if (!*stored) {
    error = "version " + std::string(sha) + " is not in the registry";
    return std::nullopt;
  }
  storage::Result<std::vector<std::uint8_t>> content = registry.versionContent(sha);
  if (!content) {
    error = registryError(content.error());
    return std::nullopt;
  }
  const storage::CodeVersion& v = **stored;
  std::optional<code::Sha256> digest = code::sha256FromHex(v.sha);
  if (!digest || v.size != static_cast<std::int64_t>(content->size())) {
    error = "version " + v.sha + " in the registry does not match its bytes";
    return std::nullopt;
  }
  if (!pki::verifyCode(signingKey, *digest, static_cast<uint32_t>(v.size), v.signature)) {
    error = "version " + v.sha +
            " is stored with a signature of another code-signing key (the key was replaced "
            "since it was deployed), which devices enrolled with this key refuse; pass the key it "
            "was signed with (--signing-key FILE), or change the code so that it is a new version";
    return std::nullopt;
  }
  ReleasedVersion out;
  out.descriptor.code = v.sha;
  out.descriptor.size = static_cast<uint32_t>(v.size);
  out.descriptor.signature = v.signature;
  for (const auto& chunk : code::buildManifest(*content).chunks) {
    out.descriptor.chunks.push_back({code::toHex(chunk.sha), chunk.length});
  }
  out.descriptor.note = v.note;
  out.descriptor.author = v.author;
  out.descriptor.createdAtMs = v.createdAtMs;
  out.content = std::move(content).value();
  return out;
}

namespace {

std::vector<RetainedMessage> toMessages(std::vector<fleet::Publication> publications) {
  std::vector<RetainedMessage> out;
  out.reserve(publications.size());
  for (auto& p : publications) out.push_back({std::move(p.topic), std::move(p.payload)});
  return out;
}

}  // namespace

bool publishRelease(FleetBus& bus, const ReleasedVersion& version,
                    const std::vector<std::string>& devices, const fleet::DeploymentBody& body,
                    EVP_PKEY* signingKey, std::int64_t nowMs, PublishedCounts& counts,
                    std::string& error) {
  std::vector<fleet::Publication> publications =
      fleet::versionPublications(bus.topics(), version.content, version.descriptor);
  counts.chunks = publications.size() - 1;  // the last one is the descriptor
  for (const std::string& device : devices) {
    publications.push_back(fleet::assignmentPublication(
        bus.topics(), fleet::GroupAssignment{device, body.group, nowMs}, signingKey));
  }
  counts.assignments = devices.size();
  std::vector<RetainedMessage> first = toMessages(std::move(publications));
  if (BusStatus s = bus.publishRetained(first, std::chrono::seconds(120)); !s) {
    error = s.error().message;
    return false;
  }
  // Only once the broker holds everything the deployment names.
  fleet::Publication deployment = fleet::deploymentPublication(bus.topics(), body, signingKey);
  if (BusStatus s = bus.publishRetained(deployment.topic, deployment.payload); !s) {
    error = s.error().message;
    return false;
  }
  return true;
}

std::optional<fleet::DeploymentBody> retainedDeployment(FleetBus& bus, std::string_view group,
                                                        EVP_PKEY* key) {
  BusResult<std::map<std::string, std::string>> retained =
      bus.collectRetained(bus.topics().groupDeploy(group), std::chrono::seconds(10));
  if (!retained || retained->empty()) return std::nullopt;
  auto verify = [key](std::string_view body, std::span<const uint8_t, 64> signature) {
    return pki::verifyDescriptor(key, body, signature);
  };
  fleet::Result<fleet::DeploymentBody> body =
      fleet::openDeployment(retained->begin()->second, verify);
  if (!body || body->group != group) return std::nullopt;
  return std::move(body).value();
}

}  // namespace impgate::impctl
