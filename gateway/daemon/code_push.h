// CodePush: this node's part of code push (docs/code-push.md).
//
// Nodes share nothing but the broker. Each one learns every group's deployment, every device's
// group assignment and every device's code state from retained fleet topics, fetches the code
// of each target version chunk by chunk from the bus, checks its hash and the fleet signature,
// and keeps it in memory and in its cache directory. When a device of a group comes online with
// other code than the group's target, the node offers the target as the rollout allows
// (Rollout: stages, halt, pause, and at most max_concurrent transfers on this node), serves the
// device's CODE_GETs from memory, and publishes what the device reports.
//
// After every (re)connection to the broker the node checks that the broker still holds the
// deployments, group assignments and code it knows, and publishes again what is missing (a
// broker restarted without persistence forgets retained messages); everything it republishes
// is signed by the fleet key, so any node may do it and no node can forge it.
//
// Reactor thread only. The Gateway calls in for devices and bus messages; the Host interface
// is how CodePush reaches a device's session.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "bus/device_bus/device_bus.h"
#include "bus/fleet/descriptors.h"
#include "bus/topics/topic_scheme.h"
#include "gateway/base/pki/openssl_ptr.h"
#include "gateway/base/protocol/frame.h"
#include "gateway/daemon/rollout.h"

namespace impgate::gateway {

class CodePush {
 public:
  // What CodePush needs of the sessions; the Gateway implements it.
  class Host {
   public:
    virtual ~Host() = default;
    // Sends `offer` to the device's online session; false when it has none.
    virtual bool sendCodeOffer(std::string_view device, const protocol::CodeOffer& offer) = 0;
    // The device installed `code` and runs it now (presence is published again).
    virtual void codeInstalled(std::string_view device, std::string_view code) = 0;
  };

  struct Options {
    std::string node;
    std::filesystem::path verifyKey;  // the fleet's code-signing public key (PEM)
    std::filesystem::path cacheDir;   // this node's copy of deployments and code
    std::string prefix = "imp";
    // An offer without a GET or a result for this long has failed ("no progress").
    uint64_t stallMs = 120'000;
  };

  CodePush(Options options, Host& host);
  ~CodePush();

  // Loads the verify key and the cache, and subscribes the fleet topics. Without a verify key
  // code push is off on this node (logged once); everything else works as before.
  void start(bus::DeviceBus& bus);
  bool enabled() const { return verifyKey_ != nullptr; }

  // Bus
  void onFleetMessage(std::string_view topic, std::span<const uint8_t> payload);
  void onFleetSyncStarted();
  void onFleetSynced();

  // Devices. `certGroup` is the group named by the device's certificate (empty: none), `running`
  // the code id of its HELLO, `capable` whether its HELLO set kCapCodePush.
  void onDeviceOnline(const std::string& device, std::string_view certGroup,
                      std::string_view running, bool capable);
  void onDeviceOffline(const std::string& device);
  // A CODE_GET: the bytes to answer with; empty when the device has no open offer of that code
  // (superseded) or asks beyond its end.
  std::span<const uint8_t> serve(const std::string& device, const protocol::CodeGet& get);
  void onResult(const std::string& device, const protocol::CodeResult& result);
  // About once a second: stalled offers, rollout views.
  void sweep(uint64_t nowMs);

  // For metrics and tests.
  std::size_t transfers() const;
  std::size_t queued() const;
  uint64_t bytesServed() const { return bytesServed_; }

 private:
  // One version of code, as it comes together from the bus.
  struct Version {
    bus::fleet::VersionDescriptor descriptor;
    std::string raw;                 // the descriptor as published (cache, republish)
    std::vector<uint8_t> chunkList;  // the offer's chunk list in wire form
    std::vector<uint8_t> bytes;      // the code, filled chunk by chunk
    std::vector<uint32_t> offsets;   // of each chunk in `bytes`
    std::size_t missing = 0;         // chunks not yet received
    bool ready = false;              // complete, hash and signature checked
    std::string problem;             // why it cannot be used (logged once)
  };
  struct Group {
    std::optional<bus::fleet::DeploymentBody> deployment;
    std::string envelope;  // as published, signed (cache, republish)
    std::unique_ptr<Rollout> rollout;
    std::deque<std::string> queue;  // local devices waiting for a transfer slot
    std::size_t transfers = 0;      // open offers on this node
    bool seen = false;              // the broker delivered it since the sync started
    std::string lastView;           // the rollout view last published
  };
  enum class Phase : uint8_t { kIdle, kQueued, kOffered, kTransferring };
  struct Local {
    std::string certGroup;
    std::string running;
    bool capable = false;
    Phase phase = Phase::kIdle;
    std::string group;        // of the open offer
    std::string offered;      // code id of the open offer
    uint32_t deployment = 0;  // of the open offer
    bool mandatory = false;
    uint64_t bytes = 0;
    uint64_t lastActivityMs = 0;
    bool deferred = false;  // deferred on this connection: offered again on its next HELLO
  };
  struct Assignment {
    std::string group;
    std::string envelope;
    bool seen = false;
  };

  void onDeployment(std::string_view group, std::span<const uint8_t> payload);
  void onAssignment(std::string_view device, std::span<const uint8_t> payload);
  void onVersion(std::string_view code, std::span<const uint8_t> payload, bool fromCache);
  void onChunk(std::string_view sha, std::span<const uint8_t> payload);
  void onCodeState(std::string_view device, std::span<const uint8_t> payload);

  bool adoptDeployment(const std::string& group, bus::fleet::DeploymentBody body,
                       std::string envelope, bool fromCache);
  bool adoptVersion(Version& version, bool fromCache);
  void versionReady(Version& version, bool writeCache);
  // Asks the bus for the version (and then its chunks) unless it is here or on its way.
  void want(const std::string& code);

  const std::string& groupOf(const std::string& device, const Local& local) const;
  // Decides what `device` needs now, and offers or queues it.
  void evaluate(const std::string& device);
  void evaluateGroup(const std::string& group);
  void pump(const std::string& group);
  bool offer(const std::string& device, Local& local, Group& g, Version& version);
  // Ends the device's open offer (result, supersession, disconnect, stall).
  void closeOffer(Local& local);
  // Ends an open offer the device did not finish (it went offline, it moved to another group):
  // its state becomes deferred, with `reason`.
  void interruptOffer(const std::string& device, Local& local, std::string_view reason);
  void publishState(const std::string& device, const Local& local, const Group& g,
                    bus::fleet::CodeState state, std::string_view reason);
  void publishView(const std::string& group, Group& g, bool force);

  bool verifyBody(std::string_view body, std::span<const uint8_t, 64> signature) const;
  void cacheWrite(const std::filesystem::path& file, std::span<const uint8_t> bytes);
  void loadCache();
  void republish(const std::string& group, Group& g);
  void publish(const std::string& topic, std::span<const uint8_t> payload, bool retained);
  static uint64_t wallMs();

  Options options_;
  Host& host_;
  bus::TopicScheme topics_;
  bus::DeviceBus* bus_ = nullptr;
  pki::PkeyPtr verifyKey_;
  std::unordered_map<std::string, Group> groups_;
  std::unordered_map<std::string, Version> versions_;
  std::unordered_set<std::string> wanted_;  // versions subscribed, not yet described
  // Chunks on their way: chunk sha -> versions waiting for it.
  std::unordered_map<std::string, std::vector<std::string>> pendingChunks_;
  std::unordered_map<std::string, Assignment> assignments_;
  std::unordered_map<std::string, Local> locals_;
  uint64_t bytesServed_ = 0;
  uint64_t nowMs_ = 0;
};

}  // namespace impgate::gateway
