// The code-push bus contract's payloads (docs/topics.md, "Code push"): plain structs and their
// JSON, for impctl (which publishes descriptors, deployments and group assignments) and the
// gateway nodes (which read those and publish device code states and rollout views).
//
// Encoders write compact JSON with the fields in the documented order, ASCII only (anything
// else is \u-escaped; bytes that are not UTF-8 become U+FFFD), so a body can be signed and
// carried inside an envelope unchanged. They do not check the struct: call check() before
// publishing what an operator typed.
//
// Decoders take untrusted bytes from the broker and never throw: a document that is not JSON,
// deeper than 16 levels, larger than kMaxDocumentSize, or has a field missing, of the wrong
// type or out of range gives ErrorCode::kMalformed with a message naming the field. Unknown
// fields are ignored, so a newer publisher can add some. Decoding runs check().
//
// Pure functions; any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bus/fleet/result.h"
#include "gateway/base/code/chunker.h"
#include "gateway/base/protocol/frame.h"

namespace impgate::bus::fleet {

// Limits of the contract: the protocol's and the chunker's.
inline constexpr uint32_t kMaxCodeSize = protocol::kMaxCodeSize;     // bytes of one code version
inline constexpr std::size_t kMaxChunks = protocol::kMaxCodeChunks;  // chunks of one version
inline constexpr uint32_t kMaxChunkSize = code::kMaxChunk;           // bytes of one chunk
// Limits of this module, to bound what a decoder holds.
inline constexpr std::size_t kMaxDocumentSize = 1 << 20;  // bytes of one JSON payload
inline constexpr std::size_t kMaxTextField = 1024;        // bytes of a note, author or reason
inline constexpr std::size_t kMaxSupported = 1024;        // codes in a deployment's supported
inline constexpr std::size_t kMaxStages = 16;

using Signature = std::array<uint8_t, 64>;  // Ed25519

struct ChunkRef {
  std::string sha;  // 64 lower-case hex
  uint32_t length = 0;
  bool operator==(const ChunkRef&) const = default;
};

// <prefix>/code/ver/<sha>: what a node needs to offer a version and fetch its chunks.
// JSON: {"code","size","signature":base64,"chunks":[[sha,len],...],"note","author","created_at"}
struct VersionDescriptor {
  std::string code;       // sha256 of the whole code, 64 lower-case hex
  uint32_t size = 0;      // 1..kMaxCodeSize, the sum of the chunk lengths
  Signature signature{};  // the code signature (pki signCode: sha and size), checked by devices
  std::vector<ChunkRef> chunks;  // 1..kMaxChunks, each 1..kMaxChunkSize bytes, in code order
  std::string note;
  std::string author;
  int64_t createdAtMs = 0;  // >= 0
  bool operator==(const VersionDescriptor&) const = default;
};

// The body of <prefix>/grp/<g>/deploy (inside a signed envelope).
// JSON: {"group","deployment","code","size","supported":[sha...],"stages":[pct...],
//        "max_concurrent","halt_failures","devices","paused","resume","created_at","author",
//        "note"}
struct DeploymentBody {
  std::string group;        // group name (device-id rules)
  uint32_t deployment = 0;  // >= 1, monotonic per group
  std::string code;         // the target version
  uint32_t size = 0;        // its size, 1..kMaxCodeSize
  // The codes a device may keep running (deployments numbered >= min_supported); a device
  // running anything else gets a mandatory offer. At most kMaxSupported, each a code id.
  std::vector<std::string> supported;
  // Stage percentages: 1..kMaxStages values of 1..100, strictly increasing, the last 100.
  std::vector<uint32_t> stages{100};
  uint32_t maxConcurrent = 0;  // transfers per node; 0 = unbounded
  double haltFailures = 100;   // percent of a stage's target, 0..100
  uint32_t devices = 0;        // group size at deploy time (stage targets)
  bool paused = false;
  uint32_t resume = 0;  // how many `code resume`s
  int64_t createdAtMs = 0;
  std::string author;
  std::string note;
  bool operator==(const DeploymentBody&) const = default;
};

// The body of <prefix>/dev/<id>/group (inside a signed envelope): overrides the group of the
// device's certificate. JSON: {"device","group","at"}
struct GroupAssignment {
  std::string device;
  std::string group;
  int64_t atMs = 0;
  bool operator==(const GroupAssignment&) const = default;
};

enum class CodeState { kCurrent, kOffered, kTransferring, kInstalled, kDeferred, kFailed };
// "current", "offered", ...; codeStateFromName gives false for any other text.
std::string_view codeStateName(CodeState state);
bool codeStateFromName(std::string_view name, CodeState& state);

// <prefix>/dev/<id>/code, published by the node the device is on.
// JSON: {"device","group","deployment","target","running","state","reason","resume","bytes",
//        "node","at"}
struct DeviceCodeState {
  std::string device;
  std::string group;
  uint32_t deployment = 0;
  std::string target;   // code id the deployment wants
  std::string running;  // code id the device runs, or empty when it reported none
  CodeState state = CodeState::kOffered;
  std::string reason;  // from the device's CODE_RESULT, or the node's; at most kMaxTextField
  uint32_t resume = 0;
  uint64_t bytes = 0;  // code bytes sent to the device for this target
  std::string node;
  int64_t atMs = 0;
  bool operator==(const DeviceCodeState&) const = default;
};

// <prefix>/grp/<g>/rollout/<node>: one node's view of a group's rollout.
// JSON: {"node","group","deployment","stage","halted","paused","transfers","queued","at"}
struct NodeRolloutView {
  std::string node;
  std::string group;
  uint32_t deployment = 0;
  uint32_t stage = 0;  // index into the deployment's stages (0 = the first)
  bool halted = false;
  bool paused = false;
  uint32_t transfers = 0;  // transfers running on this node
  uint32_t queued = 0;     // devices of this node waiting for a transfer slot or their stage
  int64_t atMs = 0;
  bool operator==(const NodeRolloutView&) const = default;
};

std::string encodeVersionDescriptor(const VersionDescriptor& v);
std::string encodeDeploymentBody(const DeploymentBody& d);
std::string encodeGroupAssignment(const GroupAssignment& g);
std::string encodeDeviceCodeState(const DeviceCodeState& s);
std::string encodeNodeRolloutView(const NodeRolloutView& r);

Result<VersionDescriptor> decodeVersionDescriptor(std::string_view json);
Result<DeploymentBody> decodeDeploymentBody(std::string_view json);
Result<GroupAssignment> decodeGroupAssignment(std::string_view json);
Result<DeviceCodeState> decodeDeviceCodeState(std::string_view json);
Result<NodeRolloutView> decodeNodeRolloutView(std::string_view json);

// The rules the decoders apply, for a struct built in code (kMalformed naming the field).
Status check(const VersionDescriptor& v);
Status check(const DeploymentBody& d);
Status check(const GroupAssignment& g);
Status check(const DeviceCodeState& s);
Status check(const NodeRolloutView& r);

}  // namespace impgate::bus::fleet
