#include "bus/fleet/descriptors.h"

#include <cmath>

#include "bus/fleet/base64.h"
#include "bus/fleet/json_reader.h"
#include "gateway/base/names.h"

namespace impgate::bus::fleet {
namespace {

using detail::fieldError;
using detail::FieldReader;
using OrderedJson = nlohmann::ordered_json;

constexpr std::string_view kVersionDoc = "version descriptor";
constexpr std::string_view kDeploymentDoc = "deployment body";
constexpr std::string_view kAssignmentDoc = "group assignment";
constexpr std::string_view kCodeStateDoc = "device code state";
constexpr std::string_view kRolloutDoc = "rollout view";

constexpr std::string_view kCodeIdRule = "must be 64 lower-case hex digits";
constexpr std::string_view kNameRule = "must be 1-64 of [A-Za-z0-9._-], not starting with '.'";

std::string textTooLong() {
  return "is longer than " + std::to_string(kMaxTextField) + " bytes";
}

}  // namespace

std::string_view codeStateName(CodeState state) {
  switch (state) {
    case CodeState::kCurrent:
      return "current";
    case CodeState::kOffered:
      return "offered";
    case CodeState::kTransferring:
      return "transferring";
    case CodeState::kInstalled:
      return "installed";
    case CodeState::kDeferred:
      return "deferred";
    case CodeState::kFailed:
      return "failed";
  }
  return "failed";
}

bool codeStateFromName(std::string_view name, CodeState& state) {
  for (CodeState s : {CodeState::kCurrent, CodeState::kOffered, CodeState::kTransferring,
                      CodeState::kInstalled, CodeState::kDeferred, CodeState::kFailed}) {
    if (codeStateName(s) == name) {
      state = s;
      return true;
    }
  }
  return false;
}

// ---- checks ---------------------------------------------------------------------------------

Status check(const VersionDescriptor& v) {
  auto bad = [](std::string_view key, std::string_view m) -> Status {
    return fieldError(kVersionDoc, key, m);
  };
  if (!isValidCodeId(v.code)) return bad("code", kCodeIdRule);
  if (v.size == 0 || v.size > kMaxCodeSize) {
    return bad("size", "must be 1.." + std::to_string(kMaxCodeSize));
  }
  if (v.chunks.empty() || v.chunks.size() > kMaxChunks) {
    return bad("chunks", "must list 1.." + std::to_string(kMaxChunks) + " chunks");
  }
  uint64_t total = 0;
  for (std::size_t i = 0; i < v.chunks.size(); ++i) {
    const ChunkRef& c = v.chunks[i];
    if (!isValidCodeId(c.sha)) {
      return bad("chunks", "entry " + std::to_string(i) + ": the sha " + std::string(kCodeIdRule));
    }
    if (c.length == 0 || c.length > kMaxChunkSize) {
      return bad("chunks", "entry " + std::to_string(i) + ": the length must be 1.." +
                               std::to_string(kMaxChunkSize));
    }
    total += c.length;
  }
  if (total != v.size) {
    return bad("chunks", "lengths add up to " + std::to_string(total) + ", not the size " +
                             std::to_string(v.size));
  }
  if (v.note.size() > kMaxTextField) return bad("note", textTooLong());
  if (v.author.size() > kMaxTextField) return bad("author", textTooLong());
  if (v.createdAtMs < 0) return bad("created_at", "must not be negative");
  return {};
}

Status check(const DeploymentBody& d) {
  auto bad = [](std::string_view key, std::string_view m) -> Status {
    return fieldError(kDeploymentDoc, key, m);
  };
  if (!isValidGroupName(d.group)) return bad("group", kNameRule);
  if (d.deployment == 0) return bad("deployment", "must be 1 or more");
  if (!isValidCodeId(d.code)) return bad("code", kCodeIdRule);
  if (d.size == 0 || d.size > kMaxCodeSize) {
    return bad("size", "must be 1.." + std::to_string(kMaxCodeSize));
  }
  if (d.supported.size() > kMaxSupported) {
    return bad("supported", "lists more than " + std::to_string(kMaxSupported) + " codes");
  }
  for (std::size_t i = 0; i < d.supported.size(); ++i) {
    if (!isValidCodeId(d.supported[i])) {
      return bad("supported", "entry " + std::to_string(i) + " " + std::string(kCodeIdRule));
    }
  }
  if (d.stages.empty() || d.stages.size() > kMaxStages) {
    return bad("stages", "must list 1.." + std::to_string(kMaxStages) + " percentages");
  }
  for (std::size_t i = 0; i < d.stages.size(); ++i) {
    if (d.stages[i] < 1 || d.stages[i] > 100 || (i > 0 && d.stages[i] <= d.stages[i - 1])) {
      return bad("stages", "must be percentages of 1..100 in increasing order");
    }
  }
  if (d.stages.back() != 100) return bad("stages", "must end with 100");
  if (!std::isfinite(d.haltFailures) || d.haltFailures < 0 || d.haltFailures > 100) {
    return bad("halt_failures", "must be a percentage 0..100");
  }
  if (d.createdAtMs < 0) return bad("created_at", "must not be negative");
  if (d.author.size() > kMaxTextField) return bad("author", textTooLong());
  if (d.note.size() > kMaxTextField) return bad("note", textTooLong());
  return {};
}

Status check(const GroupAssignment& g) {
  auto bad = [](std::string_view key, std::string_view m) -> Status {
    return fieldError(kAssignmentDoc, key, m);
  };
  if (!isValidDeviceId(g.device)) return bad("device", kNameRule);
  if (!isValidGroupName(g.group)) return bad("group", kNameRule);
  if (g.atMs < 0) return bad("at", "must not be negative");
  return {};
}

Status check(const DeviceCodeState& s) {
  auto bad = [](std::string_view key, std::string_view m) -> Status {
    return fieldError(kCodeStateDoc, key, m);
  };
  if (!isValidDeviceId(s.device)) return bad("device", kNameRule);
  if (!isValidGroupName(s.group)) return bad("group", kNameRule);
  if (!isValidCodeId(s.target)) return bad("target", kCodeIdRule);
  if (!s.running.empty() && !isValidCodeId(s.running)) {
    return bad("running", "must be empty or 64 lower-case hex digits");
  }
  if (s.reason.size() > kMaxTextField) return bad("reason", textTooLong());
  if (!isValidDeviceId(s.node)) return bad("node", kNameRule);
  if (s.atMs < 0) return bad("at", "must not be negative");
  return {};
}

Status check(const NodeRolloutView& r) {
  auto bad = [](std::string_view key, std::string_view m) -> Status {
    return fieldError(kRolloutDoc, key, m);
  };
  if (!isValidDeviceId(r.node)) return bad("node", kNameRule);
  if (!isValidGroupName(r.group)) return bad("group", kNameRule);
  if (r.stage >= kMaxStages) return bad("stage", "must be 0.." + std::to_string(kMaxStages - 1));
  if (r.atMs < 0) return bad("at", "must not be negative");
  return {};
}

// ---- encoders -------------------------------------------------------------------------------

std::string encodeVersionDescriptor(const VersionDescriptor& v) {
  OrderedJson chunks = OrderedJson::array();
  for (const ChunkRef& c : v.chunks) chunks.push_back(OrderedJson::array({c.sha, c.length}));
  OrderedJson j;
  j["code"] = v.code;
  j["size"] = v.size;
  j["signature"] = base64Encode(v.signature);
  j["chunks"] = std::move(chunks);
  j["note"] = v.note;
  j["author"] = v.author;
  j["created_at"] = v.createdAtMs;
  return detail::dumpAscii(j);
}

std::string encodeDeploymentBody(const DeploymentBody& d) {
  OrderedJson j;
  j["group"] = d.group;
  j["deployment"] = d.deployment;
  j["code"] = d.code;
  j["size"] = d.size;
  j["supported"] = d.supported;
  j["stages"] = d.stages;
  j["max_concurrent"] = d.maxConcurrent;
  // JSON has no NaN or infinity (nlohmann would write null); check() refuses them anyway.
  j["halt_failures"] = std::isfinite(d.haltFailures) ? d.haltFailures : 100.0;
  j["devices"] = d.devices;
  j["paused"] = d.paused;
  j["resume"] = d.resume;
  j["created_at"] = d.createdAtMs;
  j["author"] = d.author;
  j["note"] = d.note;
  return detail::dumpAscii(j);
}

std::string encodeGroupAssignment(const GroupAssignment& g) {
  OrderedJson j;
  j["device"] = g.device;
  j["group"] = g.group;
  j["at"] = g.atMs;
  return detail::dumpAscii(j);
}

std::string encodeDeviceCodeState(const DeviceCodeState& s) {
  OrderedJson j;
  j["device"] = s.device;
  j["group"] = s.group;
  j["deployment"] = s.deployment;
  j["target"] = s.target;
  j["running"] = s.running;
  j["state"] = std::string(codeStateName(s.state));
  j["reason"] = s.reason;
  j["resume"] = s.resume;
  j["bytes"] = s.bytes;
  j["node"] = s.node;
  j["at"] = s.atMs;
  return detail::dumpAscii(j);
}

std::string encodeNodeRolloutView(const NodeRolloutView& r) {
  OrderedJson j;
  j["node"] = r.node;
  j["group"] = r.group;
  j["deployment"] = r.deployment;
  j["stage"] = r.stage;
  j["halted"] = r.halted;
  j["paused"] = r.paused;
  j["transfers"] = r.transfers;
  j["queued"] = r.queued;
  j["at"] = r.atMs;
  return detail::dumpAscii(j);
}

// ---- decoders -------------------------------------------------------------------------------

Result<VersionDescriptor> decodeVersionDescriptor(std::string_view json) {
  auto object = detail::parseObject(json, kVersionDoc);
  if (!object) return object.error();
  FieldReader r(*object, kVersionDoc);
  VersionDescriptor v;
  std::string signature;
  if (!(r.text("code", v.code) && r.u32("size", v.size) && r.text("signature", signature))) {
    return r.error();
  }
  auto sig = base64Decode(signature);
  if (!sig || sig->size() != v.signature.size()) {
    return fieldError(kVersionDoc, "signature", "must be 64 bytes in base64");
  }
  std::copy(sig->begin(), sig->end(), v.signature.begin());
  const nlohmann::json* chunks = r.field("chunks");
  if (!chunks) return r.error();
  if (!chunks->is_array()) return fieldError(kVersionDoc, "chunks", "must be an array");
  if (chunks->size() > kMaxChunks) {
    return fieldError(kVersionDoc, "chunks", "lists more than " + std::to_string(kMaxChunks));
  }
  v.chunks.reserve(chunks->size());
  for (std::size_t i = 0; i < chunks->size(); ++i) {
    const nlohmann::json& entry = (*chunks)[i];
    std::optional<uint64_t> length;
    if (entry.is_array() && entry.size() == 2 && entry[0].is_string()) {
      length = detail::asU64(entry[1]);
    }
    if (!length || *length > UINT32_MAX) {
      return fieldError(kVersionDoc, "chunks",
                        "entry " + std::to_string(i) + " must be [\"<sha>\", length]");
    }
    v.chunks.push_back(ChunkRef{entry[0].get<std::string>(), static_cast<uint32_t>(*length)});
  }
  if (!(r.text("note", v.note) && r.text("author", v.author) &&
        r.i64("created_at", v.createdAtMs))) {
    return r.error();
  }
  if (Status s = check(v); !s) return s.error();
  return v;
}

Result<DeploymentBody> decodeDeploymentBody(std::string_view json) {
  auto object = detail::parseObject(json, kDeploymentDoc);
  if (!object) return object.error();
  FieldReader r(*object, kDeploymentDoc);
  DeploymentBody d;
  if (!(r.text("group", d.group) && r.u32("deployment", d.deployment) && r.text("code", d.code) &&
        r.u32("size", d.size))) {
    return r.error();
  }
  const nlohmann::json* supported = r.field("supported");
  if (!supported) return r.error();
  if (!supported->is_array() || supported->size() > kMaxSupported) {
    return fieldError(kDeploymentDoc, "supported",
                      "must be an array of at most " + std::to_string(kMaxSupported) + " codes");
  }
  for (const nlohmann::json& code : *supported) {
    if (!code.is_string()) return fieldError(kDeploymentDoc, "supported", "must hold strings");
    d.supported.push_back(code.get<std::string>());
  }
  const nlohmann::json* stages = r.field("stages");
  if (!stages) return r.error();
  if (!stages->is_array() || stages->size() > kMaxStages) {
    return fieldError(kDeploymentDoc, "stages",
                      "must be an array of at most " + std::to_string(kMaxStages) + " percentages");
  }
  d.stages.clear();
  for (const nlohmann::json& stage : *stages) {
    auto pct = detail::asU64(stage);
    if (!pct || *pct > 100) {
      return fieldError(kDeploymentDoc, "stages", "must hold integer percentages 1..100");
    }
    d.stages.push_back(static_cast<uint32_t>(*pct));
  }
  if (!(r.u32("max_concurrent", d.maxConcurrent) && r.number("halt_failures", d.haltFailures) &&
        r.u32("devices", d.devices) && r.boolean("paused", d.paused) && r.u32("resume", d.resume) &&
        r.i64("created_at", d.createdAtMs) && r.text("author", d.author) &&
        r.text("note", d.note))) {
    return r.error();
  }
  if (Status s = check(d); !s) return s.error();
  return d;
}

Result<GroupAssignment> decodeGroupAssignment(std::string_view json) {
  auto object = detail::parseObject(json, kAssignmentDoc);
  if (!object) return object.error();
  FieldReader r(*object, kAssignmentDoc);
  GroupAssignment g;
  if (!(r.text("device", g.device) && r.text("group", g.group) && r.i64("at", g.atMs))) {
    return r.error();
  }
  if (Status s = check(g); !s) return s.error();
  return g;
}

Result<DeviceCodeState> decodeDeviceCodeState(std::string_view json) {
  auto object = detail::parseObject(json, kCodeStateDoc);
  if (!object) return object.error();
  FieldReader r(*object, kCodeStateDoc);
  DeviceCodeState s;
  std::string state;
  if (!(r.text("device", s.device) && r.text("group", s.group) &&
        r.u32("deployment", s.deployment) && r.text("target", s.target) &&
        r.text("running", s.running) && r.text("state", state))) {
    return r.error();
  }
  if (!codeStateFromName(state, s.state)) {
    return fieldError(kCodeStateDoc, "state",
                      "must be current, offered, transferring, installed, deferred or failed");
  }
  if (!(r.text("reason", s.reason) && r.u32("resume", s.resume) && r.u64("bytes", s.bytes) &&
        r.text("node", s.node) && r.i64("at", s.atMs))) {
    return r.error();
  }
  if (Status st = check(s); !st) return st.error();
  return s;
}

Result<NodeRolloutView> decodeNodeRolloutView(std::string_view json) {
  auto object = detail::parseObject(json, kRolloutDoc);
  if (!object) return object.error();
  FieldReader r(*object, kRolloutDoc);
  NodeRolloutView v;
  if (!(r.text("node", v.node) && r.text("group", v.group) && r.u32("deployment", v.deployment) &&
        r.u32("stage", v.stage) && r.boolean("halted", v.halted) && r.boolean("paused", v.paused) &&
        r.u32("transfers", v.transfers) && r.u32("queued", v.queued) && r.i64("at", v.atMs))) {
    return r.error();
  }
  if (Status s = check(v); !s) return s.error();
  return v;
}

}  // namespace impgate::bus::fleet
