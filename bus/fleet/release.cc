#include "bus/fleet/release.h"

#include <unordered_set>

#include "bus/fleet/envelope.h"
#include "gateway/base/code/hex.h"
#include "gateway/base/code/manifest.h"
#include "gateway/base/code/sha256.h"
#include "gateway/base/pki/code_signing.h"

namespace impgate::bus::fleet {

VersionDescriptor describeVersion(std::span<const uint8_t> code, EVP_PKEY* signingKey,
                                  std::string note, std::string author, int64_t createdAtMs) {
  VersionDescriptor v;
  code::Sha256 sha = code::sha256(code);
  v.code = code::toHex(sha);
  v.size = static_cast<uint32_t>(code.size());
  v.signature = pki::signCode(signingKey, sha, v.size);
  for (const auto& chunk : code::buildManifest(code).chunks) {
    v.chunks.push_back({code::toHex(chunk.sha), chunk.length});
  }
  v.note = std::move(note);
  v.author = std::move(author);
  v.createdAtMs = createdAtMs;
  return v;
}

std::vector<Publication> versionPublications(const TopicScheme& topics,
                                             std::span<const uint8_t> code,
                                             const VersionDescriptor& version) {
  std::vector<Publication> out;
  std::unordered_set<std::string> sent;
  std::size_t offset = 0;
  for (const auto& chunk : version.chunks) {
    auto bytes = code.subspan(offset, chunk.length);
    offset += chunk.length;
    if (!sent.insert(chunk.sha).second) continue;  // a chunk that repeats is published once
    out.push_back({topics.codeChunk(chunk.sha), std::string(bytes.begin(), bytes.end())});
  }
  out.push_back({topics.codeVersion(version.code), encodeVersionDescriptor(version)});
  return out;
}

Publication deploymentPublication(const TopicScheme& topics, const DeploymentBody& body,
                                  EVP_PKEY* signingKey) {
  std::string json = encodeDeploymentBody(body);
  auto signature = pki::signDescriptor(signingKey, json);
  return {topics.groupDeploy(body.group), encodeEnvelope(json, signature)};
}

Publication assignmentPublication(const TopicScheme& topics, const GroupAssignment& assignment,
                                  EVP_PKEY* signingKey) {
  std::string json = encodeGroupAssignment(assignment);
  auto signature = pki::signDescriptor(signingKey, json);
  return {topics.deviceGroup(assignment.device), encodeEnvelope(json, signature)};
}

}  // namespace impgate::bus::fleet
