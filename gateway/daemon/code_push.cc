#include "gateway/daemon/code_push.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <system_error>

#include "bus/fleet/envelope.h"
#include "gateway/base/code/hex.h"
#include "gateway/base/code/sha256.h"
#include "gateway/base/log.h"
#include "gateway/base/names.h"
#include "gateway/base/pki/code_signing.h"

namespace impgate::gateway {
namespace {

namespace fs = std::filesystem;
namespace fleet = bus::fleet;
using fleet::CodeState;

constexpr std::string_view kComp = "code";
constexpr std::string_view kDefaultGroup = "default";

std::string_view textOf(std::span<const uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::span<const uint8_t> bytesOf(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

std::optional<std::string> readFile(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

RolloutPolicy policyOf(const fleet::DeploymentBody& d) {
  RolloutPolicy p;
  p.stages.assign(d.stages.begin(), d.stages.end());
  p.maxConcurrent = d.maxConcurrent;
  p.haltFailuresPct = d.haltFailures;
  p.devices = d.devices;
  p.paused = d.paused;
  p.resume = d.resume;
  return p;
}

}  // namespace

CodePush::CodePush(Options options, Host& host)
    : options_(std::move(options)), host_(host), topics_(options_.prefix) {}

CodePush::~CodePush() = default;

uint64_t CodePush::wallMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

void CodePush::start(bus::DeviceBus& bus) {
  bus_ = &bus;
  nowMs_ = wallMs();
  auto key = pki::readVerifyKey(options_.verifyKey);
  if (!key) {
    log::warn(kComp, "code push is off on this node: no fleet code-signing key",
              {{"key", options_.verifyKey.string()}, {"error", key.error().message}});
    return;
  }
  verifyKey_ = std::move(*key);
  loadCache();
  bus.subscribeFleet(topics_.allDeployments());
  bus.subscribeFleet(topics_.allDeviceGroups());
  bus.subscribeFleet(topics_.allDeviceCodeStates());
  for (const auto& [group, g] : groups_) {
    if (g.deployment) want(g.deployment->code);
  }
}

bool CodePush::verifyBody(std::string_view body, std::span<const uint8_t, 64> signature) const {
  return pki::verifyDescriptor(verifyKey_.get(), body, signature);
}

// ---- bus --------------------------------------------------------------------------------

void CodePush::onFleetMessage(std::string_view topic, std::span<const uint8_t> payload) {
  if (!enabled()) return;
  auto parsed = topics_.parse(topic);
  if (!parsed) {
    log::warn(kComp, "ignoring message on unexpected topic", {{"topic", topic}});
    return;
  }
  using Kind = bus::TopicScheme::Kind;
  switch (parsed->kind) {
    case Kind::kGroupDeploy:
      onDeployment(parsed->name, payload);
      break;
    case Kind::kDeviceGroup:
      onAssignment(parsed->name, payload);
      break;
    case Kind::kCodeVersion:
      onVersion(parsed->name, payload, false);
      break;
    case Kind::kCodeChunk:
      onChunk(parsed->name, payload);
      break;
    case Kind::kDeviceCode:
      onCodeState(parsed->name, payload);
      break;
    default:
      log::warn(kComp, "ignoring message on unexpected topic", {{"topic", topic}});
      break;
  }
}

void CodePush::onDeployment(std::string_view group, std::span<const uint8_t> payload) {
  if (payload.empty()) return;  // a cleared retained message
  auto verifier = [this](std::string_view body, std::span<const uint8_t, 64> sig) {
    return verifyBody(body, sig);
  };
  auto body = fleet::openDeployment(textOf(payload), verifier);
  if (!body) {
    log::warn(kComp, "ignoring deployment that does not verify",
              {{"group", group}, {"error", body.error().message}});
    return;
  }
  if (body->group != group) {
    log::warn(kComp, "ignoring deployment published under another group's topic",
              {{"topic_group", group}, {"group", body->group}});
    return;
  }
  adoptDeployment(std::string(group), std::move(*body), std::string(textOf(payload)), false);
}

bool CodePush::adoptDeployment(const std::string& group, fleet::DeploymentBody body,
                               std::string envelope, bool fromCache) {
  Group& g = groups_[group];
  if (!fromCache) g.seen = true;
  if (g.deployment) {
    const auto& known = *g.deployment;
    if (body.deployment < known.deployment ||
        (body.deployment == known.deployment && body.resume < known.resume)) {
      // An older descriptor (a stale node restoring what it had): ours wins on the broker.
      if (!fromCache) {
        log::info(kComp, "the broker has an older deployment; publishing the newer one",
                  {{"group", group}, {"broker", body.deployment}, {"known", known.deployment}});
        publish(topics_.groupDeploy(group), bytesOf(g.envelope), true);
      }
      return false;
    }
    if (body == known) return false;
  }
  const bool newDeployment = !g.deployment || g.deployment->deployment != body.deployment;
  if (newDeployment) {
    log::info(kComp, "deployment",
              {{"group", group},
               {"deployment", body.deployment},
               {"code", body.code},
               {"paused", body.paused}});
    // Open offers of the previous deployment are superseded; their devices are evaluated again
    // below and get the new target.
    for (auto& [device, local] : locals_) {
      if (local.group == group &&
          (local.phase == Phase::kOffered || local.phase == Phase::kTransferring)) {
        closeOffer(local);
      }
    }
    g.queue.clear();
    for (auto& [device, local] : locals_) {
      if (local.phase == Phase::kQueued && local.group == group) local.phase = Phase::kIdle;
      if (local.group == group) local.deferred = false;  // it deferred the previous target
    }
    g.rollout = std::make_unique<Rollout>(body.deployment, policyOf(body));
  } else {
    g.rollout->updatePolicy(policyOf(body));
  }
  g.deployment = std::move(body);
  if (!fromCache && envelope != g.envelope) {
    cacheWrite(options_.cacheDir / "deploy" / (group + ".json"), bytesOf(envelope));
  }
  g.envelope = std::move(envelope);
  if (bus_ != nullptr) want(g.deployment->code);
  evaluateGroup(group);
  publishView(group, g, true);
  return true;
}

void CodePush::onAssignment(std::string_view device, std::span<const uint8_t> payload) {
  if (payload.empty()) return;
  auto verifier = [this](std::string_view body, std::span<const uint8_t, 64> sig) {
    return verifyBody(body, sig);
  };
  auto body = fleet::openGroupAssignment(textOf(payload), verifier);
  if (!body || body->device != device) {
    log::warn(kComp, "ignoring group assignment that does not verify",
              {{"device", device},
               {"error", body ? "published under another device's topic" : body.error().message}});
    return;
  }
  Assignment& a = assignments_[std::string(device)];
  a.seen = true;
  std::string envelope(textOf(payload));
  if (a.envelope == envelope) return;
  const bool moved = a.group != body->group;
  a.group = body->group;
  a.envelope = std::move(envelope);
  cacheWrite(options_.cacheDir / "group" / (std::string(device) + ".json"), payload);
  if (moved && locals_.contains(std::string(device))) evaluate(std::string(device));
}

void CodePush::want(const std::string& code) {
  if (versions_.contains(code) || wanted_.contains(code)) return;
  wanted_.insert(code);
  bus_->subscribeFleet(topics_.codeVersion(code));
}

void CodePush::onVersion(std::string_view code, std::span<const uint8_t> payload, bool fromCache) {
  if (payload.empty() || versions_.contains(std::string(code))) return;
  auto descriptor = fleet::decodeVersionDescriptor(textOf(payload));
  if (!descriptor || descriptor->code != code) {
    log::warn(kComp, "ignoring version descriptor",
              {{"code", code},
               {"error", descriptor ? "published under another version's topic"
                                    : descriptor.error().message}});
    return;
  }
  Version v;
  v.descriptor = std::move(*descriptor);
  v.raw.assign(textOf(payload));
  if (!fromCache) {
    wanted_.erase(v.descriptor.code);
    bus_->unsubscribeFleet(topics_.codeVersion(v.descriptor.code));
  }
  Version& version = versions_[v.descriptor.code] = std::move(v);
  adoptVersion(version, fromCache);
}

bool CodePush::adoptVersion(Version& v, bool fromCache) {
  const auto& d = v.descriptor;
  v.bytes.assign(d.size, 0);
  v.offsets.clear();
  v.chunkList.clear();
  uint32_t offset = 0;
  for (const auto& chunk : d.chunks) {
    v.offsets.push_back(offset);
    offset += chunk.length;
    auto sha = code::sha256FromHex(chunk.sha);
    protocol::appendCodeChunk({*sha, chunk.length}, v.chunkList);
  }
  if (fromCache) {
    auto blob = readFile(options_.cacheDir / "ver" / (d.code + ".bin"));
    if (blob && blob->size() == d.size) {
      std::copy(blob->begin(), blob->end(), v.bytes.begin());
      v.missing = 0;
      versionReady(v, false);
      if (v.ready) return true;
    }
    // The cached code is missing or damaged: fetch it from the bus.
    v.problem.clear();
  }
  if (!fromCache) cacheWrite(options_.cacheDir / "ver" / (d.code + ".json"), bytesOf(v.raw));
  std::unordered_set<std::string> asked;
  v.missing = d.chunks.size();
  for (const auto& chunk : d.chunks) {
    auto& waiting = pendingChunks_[chunk.sha];
    waiting.push_back(d.code);
    if (asked.insert(chunk.sha).second && waiting.size() == 1 && bus_ != nullptr) {
      bus_->subscribeFleet(topics_.codeChunk(chunk.sha));
    }
  }
  return false;
}

void CodePush::onChunk(std::string_view sha, std::span<const uint8_t> payload) {
  auto it = pendingChunks_.find(std::string(sha));
  if (it == pendingChunks_.end()) return;  // not waited for (or already here)
  if (payload.empty()) return;
  if (code::toHex(code::sha256(payload)) != sha) {
    log::error(kComp, "chunk on the bus does not match its name; ignoring it (tampered?)",
               {{"chunk", sha}, {"bytes", payload.size()}});
    return;
  }
  std::vector<std::string> waiting = std::move(it->second);
  pendingChunks_.erase(it);
  bus_->unsubscribeFleet(topics_.codeChunk(sha));
  std::unordered_set<std::string> done;
  for (const auto& code : waiting) {
    if (!done.insert(code).second) continue;
    auto vit = versions_.find(code);
    if (vit == versions_.end()) continue;
    Version& v = vit->second;
    const auto& chunks = v.descriptor.chunks;
    for (std::size_t i = 0; i < chunks.size(); ++i) {
      if (chunks[i].sha != sha) continue;
      if (payload.size() != chunks[i].length) {
        // The chunk is genuine (its hash is its name); the descriptor is what is wrong.
        v.problem = "chunk " + std::string(sha) + " has another length than its descriptor says";
        log::error(kComp, "version cannot be pushed", {{"code", code}, {"error", v.problem}});
        continue;
      }
      std::copy(payload.begin(), payload.end(), v.bytes.begin() + v.offsets[i]);
      --v.missing;
    }
    if (v.missing == 0) versionReady(v, true);
  }
}

void CodePush::versionReady(Version& v, bool writeCache) {
  const auto& d = v.descriptor;
  code::Sha256 sha = code::sha256(v.bytes);
  if (code::toHex(sha) != d.code) {
    v.problem = "the assembled code does not match its hash";
  } else if (!pki::verifyCode(verifyKey_.get(), sha, d.size, d.signature)) {
    v.problem = "the code's signature does not verify against the fleet key";
  }
  if (!v.problem.empty()) {
    log::error(kComp, "version cannot be pushed", {{"code", d.code}, {"error", v.problem}});
    return;
  }
  v.ready = true;
  log::info(kComp, "version ready", {{"code", d.code}, {"bytes", d.size}});
  if (writeCache) cacheWrite(options_.cacheDir / "ver" / (d.code + ".bin"), v.bytes);
  for (auto& [group, g] : groups_) {
    if (g.deployment && g.deployment->code == d.code) evaluateGroup(group);
  }
}

void CodePush::onCodeState(std::string_view device, std::span<const uint8_t> payload) {
  if (payload.empty()) return;
  // A device on this node: its state is recorded here as it changes, and what comes back from
  // the broker is this node's own (parsing thousands of them back cost 7 % of a push's CPU).
  if (locals_.contains(std::string(device))) return;
  auto state = fleet::decodeDeviceCodeState(textOf(payload));
  if (!state || state->device != device) return;
  auto git = groups_.find(state->group);
  if (git == groups_.end() || !git->second.rollout) return;
  Group& g = git->second;
  if (g.rollout->deployment() != state->deployment) return;
  const std::size_t stageBefore = g.rollout->currentStage();
  const bool haltedBefore = g.rollout->halted();
  g.rollout->record(state->device, state->state, state->resume);
  if (g.rollout->currentStage() != stageBefore) {
    log::info(kComp, "rollout stage opened",
              {{"group", state->group},
               {"deployment", state->deployment},
               {"stage", g.rollout->currentStage() + 1},
               {"percent", g.rollout->policy().stages[g.rollout->currentStage()]}});
  }
  if (g.rollout->halted() && !haltedBefore) {
    log::warn(kComp, "rollout halted: failures passed the threshold",
              {{"group", state->group},
               {"deployment", state->deployment},
               {"failed", g.rollout->counts().failed}});
    publishView(state->group, g, true);
  }
  if (!g.queue.empty()) pump(state->group);
}

void CodePush::onFleetSyncStarted() {
  for (auto& [group, g] : groups_) g.seen = false;
  for (auto& [device, a] : assignments_) a.seen = false;
}

void CodePush::onFleetSynced() {
  if (!enabled()) return;
  // Everything the broker still holds under the fleet subscriptions has arrived: what is
  // missing was lost (a broker restarted without persistence). Publish it again.
  for (auto& [group, g] : groups_) {
    if (g.deployment && !g.seen) republish(group, g);
  }
  std::size_t restored = 0;
  for (auto& [device, a] : assignments_) {
    if (!a.seen && !a.envelope.empty()) {
      publish(topics_.deviceGroup(device), bytesOf(a.envelope), true);
      ++restored;
    }
  }
  if (restored > 0) log::info(kComp, "restored group assignments", {{"devices", restored}});
}

void CodePush::republish(const std::string& group, Group& g) {
  log::info(kComp, "the broker lost a deployment; publishing it again from this node's cache",
            {{"group", group}, {"deployment", g.deployment->deployment}});
  publish(topics_.groupDeploy(group), bytesOf(g.envelope), true);
  auto vit = versions_.find(g.deployment->code);
  if (vit == versions_.end() || !vit->second.ready) return;
  Version& v = vit->second;
  publish(topics_.codeVersion(v.descriptor.code), bytesOf(v.raw), true);
  std::unordered_set<std::string> sent;
  for (std::size_t i = 0; i < v.descriptor.chunks.size(); ++i) {
    const auto& chunk = v.descriptor.chunks[i];
    if (!sent.insert(chunk.sha).second) continue;
    publish(topics_.codeChunk(chunk.sha), std::span(v.bytes).subspan(v.offsets[i], chunk.length),
            true);
  }
}

// ---- devices ------------------------------------------------------------------------------

const std::string& CodePush::groupOf(const std::string& device, const Local& local) const {
  static const std::string kDefault(kDefaultGroup);
  auto it = assignments_.find(device);
  if (it != assignments_.end() && !it->second.group.empty()) return it->second.group;
  return local.certGroup.empty() ? kDefault : local.certGroup;
}

void CodePush::onDeviceOnline(const std::string& device, std::string_view certGroup,
                              std::string_view running, bool capable) {
  if (!enabled()) return;
  Local& local = locals_[device];
  // A new session of a device whose old one still had an offer open: that offer is over.
  const std::string freed =
      local.phase == Phase::kOffered || local.phase == Phase::kTransferring ? local.group : "";
  if (!freed.empty()) closeOffer(local);
  local = Local{};
  local.certGroup.assign(certGroup);
  local.running.assign(running);
  local.capable = capable;
  evaluate(device);
  if (!freed.empty()) pump(freed);
}

void CodePush::onDeviceOffline(const std::string& device) {
  auto it = locals_.find(device);
  if (it == locals_.end()) return;
  std::string group = it->second.group;
  const bool hadSlot =
      it->second.phase == Phase::kOffered || it->second.phase == Phase::kTransferring;
  if (hadSlot) interruptOffer(device, it->second, "offline during the transfer");
  locals_.erase(it);
  if (hadSlot) pump(group);
}

void CodePush::interruptOffer(const std::string& device, Local& local, std::string_view reason) {
  // Counted as put off, like a deferral: it no longer holds a place in the stage (a device that
  // never comes back would hold it for ever), and it is offered the code again on its next
  // HELLO, when it fetches only what it lacks.
  const std::string group = local.group;
  closeOffer(local);
  local.group = group;
  auto git = groups_.find(group);
  if (git == groups_.end() || !git->second.deployment) return;
  Group& g = git->second;
  g.rollout->record(device, CodeState::kDeferred, g.deployment->resume);
  publishState(device, local, g, CodeState::kDeferred, reason);
}

void CodePush::evaluateGroup(const std::string& group) {
  std::vector<std::string> devices;
  for (const auto& [device, local] : locals_) {
    if (groupOf(device, local) == group || local.group == group) devices.push_back(device);
  }
  // In id order, so that which devices a stage takes first does not depend on hashing.
  std::sort(devices.begin(), devices.end());
  for (const auto& device : devices) evaluate(device);
  // Devices already queued (a pause, a halt, a full stage) are not queued again above; a policy
  // change may let them start.
  pump(group);
}

void CodePush::evaluate(const std::string& device) {
  auto lit = locals_.find(device);
  if (lit == locals_.end()) return;
  Local& local = lit->second;
  const std::string group = groupOf(device, local);
  if (!local.group.empty() && local.group != group) {
    // Moved to another group: whatever it was offered is not its target any more.
    if (local.phase == Phase::kOffered || local.phase == Phase::kTransferring) {
      std::string old = local.group;
      interruptOffer(device, local, "moved to group " + group);
      pump(old);
    }
    local.phase = Phase::kIdle;
    local.deferred = false;
  }
  local.group = group;
  auto git = groups_.find(group);
  if (git == groups_.end() || !git->second.deployment) return;
  Group& g = git->second;
  const auto& d = *g.deployment;
  if (local.running == d.code) {
    const CodeState* known = g.rollout->stateOf(device);
    if (known == nullptr || (*known != CodeState::kCurrent && *known != CodeState::kInstalled)) {
      g.rollout->record(device, CodeState::kCurrent, d.resume);
      publishState(device, local, g, CodeState::kCurrent, {});
    }
    return;
  }
  if (!local.capable) return;
  if (local.phase != Phase::kIdle) return;  // queued or already offered this target
  if (local.deferred) return;
  auto vit = versions_.find(d.code);
  if (vit == versions_.end() || !vit->second.ready) return;  // evaluated again once it is
  if (!g.rollout->eligible(device)) return;
  local.phase = Phase::kQueued;
  g.queue.push_back(device);
  pump(group);
}

void CodePush::pump(const std::string& group) {
  auto git = groups_.find(group);
  if (git == groups_.end() || !git->second.deployment) return;
  Group& g = git->second;
  auto vit = versions_.find(g.deployment->code);
  if (vit == versions_.end() || !vit->second.ready) return;
  const uint32_t limit = g.deployment->maxConcurrent;
  while (!g.queue.empty()) {
    const std::string device = g.queue.front();
    auto lit = locals_.find(device);
    if (lit == locals_.end() || lit->second.phase != Phase::kQueued || lit->second.group != group ||
        !g.rollout->eligible(device)) {
      if (lit != locals_.end() && lit->second.phase == Phase::kQueued) {
        lit->second.phase = Phase::kIdle;
      }
      g.queue.pop_front();
      continue;
    }
    if (limit != 0 && g.transfers >= limit) break;
    // An offer still open from an earlier connection holds its place in the stage already.
    const CodeState* known = g.rollout->stateOf(device);
    const bool reoffer =
        known != nullptr && (*known == CodeState::kOffered || *known == CodeState::kTransferring);
    if (!reoffer && !g.rollout->mayStart()) break;
    g.queue.pop_front();
    if (!offer(device, lit->second, g, vit->second)) {
      // Writing the offer may have closed the session, and onDeviceOffline erased the device.
      lit = locals_.find(device);
      if (lit != locals_.end()) lit->second.phase = Phase::kIdle;
    }
  }
  publishView(group, g, false);
}

bool CodePush::offer(const std::string& device, Local& local, Group& g, Version& version) {
  const auto& d = *g.deployment;
  protocol::CodeOffer offer;
  offer.deployment = d.deployment;
  offer.mandatory =
      std::find(d.supported.begin(), d.supported.end(), local.running) == d.supported.end();
  offer.code = *code::sha256FromHex(d.code);
  offer.size = version.descriptor.size;
  offer.signature = version.descriptor.signature;
  offer.chunks = protocol::CodeChunkList(version.chunkList);
  if (!host_.sendCodeOffer(device, offer)) return false;
  local.phase = Phase::kOffered;
  local.offered = d.code;
  local.deployment = d.deployment;
  local.mandatory = offer.mandatory;
  local.bytes = 0;
  local.lastActivityMs = nowMs_;
  ++g.transfers;
  g.rollout->record(device, CodeState::kOffered, d.resume);
  publishState(device, local, g, CodeState::kOffered, {});
  log::info(kComp, "offered code",
            {{"device", device},
             {"group", local.group},
             {"deployment", d.deployment},
             {"code", d.code},
             {"mandatory", offer.mandatory}});
  return true;
}

void CodePush::closeOffer(Local& local) {
  auto git = groups_.find(local.group);
  if (git != groups_.end() && git->second.transfers > 0) --git->second.transfers;
  local.phase = Phase::kIdle;
  local.offered.clear();
}

std::span<const uint8_t> CodePush::serve(const std::string& device, const protocol::CodeGet& get) {
  auto lit = locals_.find(device);
  if (lit == locals_.end()) return {};
  Local& local = lit->second;
  if (local.phase != Phase::kOffered && local.phase != Phase::kTransferring) return {};
  if (code::toHex(get.code) != local.offered) return {};
  auto vit = versions_.find(local.offered);
  if (vit == versions_.end() || !vit->second.ready) return {};
  const auto& bytes = vit->second.bytes;
  if (get.offset >= bytes.size()) return {};
  const std::size_t n =
      std::min<std::size_t>({get.length, protocol::kMaxCodeData, bytes.size() - get.offset});
  local.lastActivityMs = nowMs_;
  local.bytes += n;
  bytesServed_ += n;
  if (local.phase == Phase::kOffered) {
    local.phase = Phase::kTransferring;
    Group& g = groups_[local.group];
    g.rollout->record(device, CodeState::kTransferring, g.deployment->resume);
    publishState(device, local, g, CodeState::kTransferring, {});
  }
  return std::span(bytes).subspan(get.offset, n);
}

void CodePush::onResult(const std::string& device, const protocol::CodeResult& result) {
  auto lit = locals_.find(device);
  if (lit == locals_.end()) return;
  Local& local = lit->second;
  const std::string code = code::toHex(result.code);
  if ((local.phase != Phase::kOffered && local.phase != Phase::kTransferring) ||
      code != local.offered) {
    log::warn(kComp, "ignoring a code result for code the device was not offered",
              {{"device", device}, {"code", code}});
    return;
  }
  auto git = groups_.find(local.group);
  if (git == groups_.end() || !git->second.deployment) return;
  Group& g = git->second;
  std::string reason(result.reason.substr(0, fleet::kMaxTextField));
  CodeState state = CodeState::kFailed;
  switch (result.status) {
    case protocol::CodeResultStatus::kInstalled:
      state = CodeState::kInstalled;
      break;
    case protocol::CodeResultStatus::kDeferred:
      if (local.mandatory) {
        reason = "deferred a mandatory update: " + reason;
      } else {
        state = CodeState::kDeferred;
      }
      break;
    case protocol::CodeResultStatus::kFailed:
      state = CodeState::kFailed;
      break;
  }
  if (state == CodeState::kInstalled) {
    local.running = code;
    host_.codeInstalled(device, code);
  }
  const std::string group = local.group;
  closeOffer(local);
  local.group = group;
  local.deferred = state == CodeState::kDeferred;
  g.rollout->record(device, state, g.deployment->resume);
  publishState(device, local, g, state, reason);
  log::write(state == CodeState::kFailed ? log::Level::kWarn : log::Level::kInfo, kComp,
             "code result",
             {{"device", device},
              {"code", code},
              {"result", fleet::codeStateName(state)},
              {"reason", reason}});
  if (g.rollout->halted()) publishView(group, g, true);
  pump(group);
}

void CodePush::sweep(uint64_t nowMs) {
  nowMs_ = nowMs;
  if (!enabled()) return;
  std::vector<std::string> stalled;
  for (const auto& [device, local] : locals_) {
    if ((local.phase == Phase::kOffered || local.phase == Phase::kTransferring) &&
        nowMs - local.lastActivityMs > options_.stallMs) {
      stalled.push_back(device);
    }
  }
  for (const auto& device : stalled) {
    // An offer made by pump() below may have closed another stalled device's session.
    auto lit = locals_.find(device);
    if (lit == locals_.end()) continue;
    Local& local = lit->second;
    Group& g = groups_[local.group];
    const std::string group = local.group;
    log::warn(kComp, "code transfer stalled", {{"device", device}, {"code", local.offered}});
    closeOffer(local);
    local.group = group;
    if (g.deployment) {
      g.rollout->record(device, CodeState::kFailed, g.deployment->resume);
      publishState(device, local, g, CodeState::kFailed, "no progress");
    }
    pump(group);
  }
  for (auto& [group, g] : groups_) publishView(group, g, false);
}

void CodePush::publishState(const std::string& device, const Local& local, const Group& g,
                            CodeState state, std::string_view reason) {
  const auto& d = *g.deployment;
  fleet::DeviceCodeState s;
  s.device = device;
  s.group = d.group;
  s.deployment = d.deployment;
  s.target = d.code;
  s.running = local.running;
  s.state = state;
  s.reason.assign(reason.substr(0, fleet::kMaxTextField));
  s.resume = d.resume;
  s.bytes = local.bytes;
  s.node = options_.node;
  s.atMs = static_cast<int64_t>(wallMs());
  std::string json = fleet::encodeDeviceCodeState(s);
  publish(topics_.deviceCode(device), bytesOf(json), true);
}

void CodePush::publishView(const std::string& group, Group& g, bool force) {
  if (!g.deployment || bus_ == nullptr) return;
  fleet::NodeRolloutView v;
  v.node = options_.node;
  v.group = group;
  v.deployment = g.deployment->deployment;
  v.stage = static_cast<uint32_t>(g.rollout->currentStage());
  v.halted = g.rollout->halted();
  v.paused = g.rollout->paused();
  v.transfers = static_cast<uint32_t>(g.transfers);
  v.queued = static_cast<uint32_t>(g.queue.size());
  // Compared without the time, so an unchanged view is not published every second.
  std::string key = fleet::encodeNodeRolloutView(v);
  if (!force && key == g.lastView) return;
  g.lastView = key;
  v.atMs = static_cast<int64_t>(wallMs());
  std::string json = fleet::encodeNodeRolloutView(v);
  publish(topics_.groupRollout(group, options_.node), bytesOf(json), true);
}

void CodePush::publish(const std::string& topic, std::span<const uint8_t> payload, bool retained) {
  if (bus_ != nullptr) bus_->publishFleet(topic, payload, retained);
}

std::size_t CodePush::transfers() const {
  std::size_t n = 0;
  for (const auto& [group, g] : groups_) n += g.transfers;
  return n;
}

std::size_t CodePush::queued() const {
  std::size_t n = 0;
  for (const auto& [group, g] : groups_) n += g.queue.size();
  return n;
}

// ---- cache --------------------------------------------------------------------------------

void CodePush::cacheWrite(const fs::path& file, std::span<const uint8_t> bytes) {
  // Written aside and renamed, so a crash never leaves half a file; an empty write removes it.
  std::error_code ec;
  if (bytes.empty()) {
    fs::remove(file, ec);
    return;
  }
  fs::create_directories(file.parent_path(), ec);
  fs::path tmp = file;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      log::warn(kComp, "cannot write the code cache", {{"file", tmp.string()}});
      return;
    }
  }
  fs::rename(tmp, file, ec);
  if (ec) log::warn(kComp, "cannot write the code cache", {{"file", file.string()}});
}

void CodePush::loadCache() {
  std::error_code ec;
  auto each = [&](const char* dir, auto&& f) {
    for (const auto& entry : fs::directory_iterator(options_.cacheDir / dir, ec)) {
      if (entry.path().extension() != ".json") continue;
      auto text = readFile(entry.path());
      if (text) f(entry.path().stem().string(), *text);
    }
  };
  each("ver", [&](const std::string& code, const std::string& text) {
    if (code::isSha256Hex(code)) onVersion(code, bytesOf(text), true);
  });
  each("deploy", [&](const std::string& group, const std::string& text) {
    if (!isValidDeviceId(group)) return;
    auto verifier = [this](std::string_view body, std::span<const uint8_t, 64> sig) {
      return verifyBody(body, sig);
    };
    auto body = fleet::openDeployment(text, verifier);
    if (body && body->group == group) adoptDeployment(group, std::move(*body), text, true);
  });
  each("group", [&](const std::string& device, const std::string& text) {
    if (!isValidDeviceId(device)) return;
    auto verifier = [this](std::string_view body, std::span<const uint8_t, 64> sig) {
      return verifyBody(body, sig);
    };
    auto body = fleet::openGroupAssignment(text, verifier);
    if (body && body->device == device) {
      assignments_[device] = Assignment{body->group, text, false};
    }
  });
  if (!groups_.empty()) {
    log::info(kComp, "loaded the code cache",
              {{"deployments", groups_.size()}, {"versions", versions_.size()}});
  }
}

}  // namespace impgate::gateway
