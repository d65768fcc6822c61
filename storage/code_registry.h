// The code registry: the code versions impctl has stored (content-addressed by SHA-256), the
// device groups, each group's numbered deployments with their rollout policy, and the push
// history the gateway nodes report for each device. It is what `impctl code ...`, `impctl
// group ...` and `impctl device move` read and write; the gateway never opens it (nodes learn
// deployments and code from the bus, docs/architecture.md "Code registry").
//
// Everything here takes plain values: hashes as 64 lower-case hex characters, code and
// signatures as bytes. Storage neither hashes nor verifies signatures; the caller (impctl,
// with the code and pki libraries) computes the SHA-256 and the signature and passes them in.
//
// Borrows the Database (see storage/database.h); one thread. Every change runs in one
// BEGIN IMMEDIATE transaction with its audit row, so a refusal leaves nothing behind and two
// processes deploying to one group at once are serialised (both get distinct numbers, or one
// fails with "database is locked" after Database::kBusyTimeoutMs and changes nothing).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/audit_log.h"
#include "storage/database.h"
#include "storage/result.h"

namespace impgate::storage {

// Code sizes the registry accepts: 1 byte .. 4 MiB (the protocol's kMaxCodeSize).
inline constexpr std::int64_t kMaxStoredCodeSize = 4 * 1024 * 1024;
// Longest note or author, in bytes.
inline constexpr std::size_t kMaxNoteLength = 1024;
inline constexpr std::size_t kMaxAuthorLength = 256;
// Longest failure reason in the push history, in bytes (devices send at most 255).
inline constexpr std::size_t kMaxReasonLength = 1024;
// Most stages in a rollout policy (each stage is a distinct percentage).
inline constexpr std::size_t kMaxStages = 100;

using CodeSignature = std::array<std::uint8_t, 64>;  // Ed25519

// True for 64 lower-case hex characters: how a SHA-256 is written everywhere in text.
bool isValidSha256Hex(std::string_view sha);

// A stored version, without its bytes.
struct CodeVersion {
  std::string sha;  // SHA-256 of the content, 64 lower-case hex
  std::int64_t size = 0;
  std::string note;
  std::string author;
  std::int64_t createdAtMs = 0;
  CodeSignature signature{};

  bool operator==(const CodeVersion&) const = default;
};

// What addVersion() stores.
struct NewCodeVersion {
  std::string sha;        // the caller's SHA-256 of `content`, 64 lower-case hex
  std::int64_t size = 0;  // must equal content.size()
  std::string note;
  std::string author;
  std::int64_t createdAtMs = 0;
  CodeSignature signature{};
  std::vector<std::uint8_t> content;
};

struct AddedVersion {
  CodeVersion version;   // as stored: for an existing sha, the first note, author and time
  bool existed = false;  // the sha was already stored (with the same content); nothing changed
};

struct GroupInfo {
  std::string name;
  std::int64_t createdAtMs = 0;
  std::int64_t devices = 0;                  // enrolled in the group, revoked ones included
  std::int64_t activeDevices = 0;            // not revoked: what rollout stages count
  std::optional<std::int64_t> minSupported;  // deployment number; nullopt until one is marked
  std::int64_t nextDeployment = 1;           // the number the next deployment will get

  bool operator==(const GroupInfo&) const = default;
};

// How a deployment rolls out (the rules are in docs/architecture.md, "Rollouts").
struct RolloutPolicy {
  std::vector<int> stages{100};    // percentages, each 1..100, strictly increasing, last 100
  std::int64_t maxConcurrent = 0;  // transfers per node; 0 = unbounded
  double haltFailuresPct = 100;    // 0..100; 100 never halts

  bool operator==(const RolloutPolicy&) const = default;
};

// Why a policy is refused ("stages must ..."), or nullopt when it is valid.
std::optional<std::string> policyProblem(const RolloutPolicy& policy);

struct Deployment {
  std::string group;
  std::int64_t number = 0;  // per group, from 1, never reused
  std::string codeSha;
  std::int64_t codeSize = 0;  // the version's size
  RolloutPolicy policy;
  bool minSupported = false;  // this deployment raised the group's min_supported to its number
  bool flagged = false;       // kept: cannot be deleted
  bool paused = false;
  std::int64_t resume = 0;  // how many times it was resumed
  std::int64_t createdAtMs = 0;
  std::string author;
  std::string note;

  bool operator==(const Deployment&) const = default;
};

// The states a node reports for a device's push (docs/topics.md, "Code push").
// current: the device already ran the target when seen.
bool isValidPushState(std::string_view state);

struct PushState {
  std::string device;
  std::string group;
  std::int64_t deployment = 0;
  std::string codeSha;  // the deployment's code (the push's target)
  std::string state;    // current|offered|transferring|installed|deferred|failed
  std::string reason;   // e.g. "bad signature"; may be empty
  std::int64_t atMs = 0;
  std::string node;  // the gateway node that reported it

  bool operator==(const PushState&) const = default;
};

class CodeRegistry {
 public:
  static Result<CodeRegistry> open(Database& db);

  // ---- Versions

  // Stores a version. Refused (kInvalidInput) unless the sha is 64 lower-case hex, size ==
  // content.size(), 1 <= size <= kMaxStoredCodeSize, and note and author are short printable
  // UTF-8. Idempotent: the same sha with the same content returns the stored record with
  // existed = true; the same sha with other bytes is refused (kAlreadyExists).
  Result<AddedVersion> addVersion(const NewCodeVersion& version);
  Result<std::optional<CodeVersion>> version(std::string_view sha);
  // Every version, oldest first, without content.
  Result<std::vector<CodeVersion>> listVersions();
  // The code bytes; kNotFound for an unknown sha.
  Result<std::vector<std::uint8_t>> versionContent(std::string_view sha);

  // ---- Groups (the device_groups that device enrolment also creates)

  // kInvalidName for a name that fails isValidDeviceId(), kAlreadyExists when it exists.
  Status createGroup(std::string_view name, std::int64_t atMs, std::string_view actor);
  Result<bool> groupExists(std::string_view name);
  Result<std::optional<GroupInfo>> group(std::string_view name);
  // Every group, by name, with its device counts.
  Result<std::vector<GroupInfo>> listGroups();
  // Ids of the group's devices that are not revoked, by id (kNotFound: no such group).
  Result<std::vector<std::string>> activeDevices(std::string_view group);

  // Moves an enrolled device into an existing group (both kNotFound otherwise) and audits it.
  // Yields the group it was in; moving into its own group changes nothing.
  Result<std::string> moveDevice(std::string_view id, std::string_view group, std::int64_t atMs,
                                 std::string_view actor);

  // ---- Deployments

  // Records the group's next deployment of `codeSha` and yields its number (one more than the
  // group's last, counting deleted ones). With minSupported the group's min_supported becomes
  // this number. kNotFound: no such group or version; kInvalidInput: a bad policy, note or
  // author. `author` is also the audit actor.
  Result<std::int64_t> createDeployment(std::string_view group, std::string_view codeSha,
                                        const RolloutPolicy& policy, bool minSupported,
                                        std::string_view author, std::string_view note,
                                        std::int64_t atMs);
  // The group's highest-numbered deployment: its live target. nullopt when it has none;
  // kNotFound when the group does not exist.
  Result<std::optional<Deployment>> latestDeployment(std::string_view group);
  // nullopt when the group or the deployment does not exist (or was deleted).
  Result<std::optional<Deployment>> deployment(std::string_view group, std::int64_t number);
  // The highest-numbered deployment below `number`, nullopt when there is none.
  Result<std::optional<Deployment>> deploymentBefore(std::string_view group, std::int64_t number);
  // The group's deployments, oldest first (kNotFound when the group does not exist).
  Result<std::vector<Deployment>> listDeployments(std::string_view group);
  // Distinct codes of the deployments numbered >= the group's min_supported (of all of them
  // when none is set), ordered by their latest deployment, the live target last.
  Result<std::vector<std::string>> supportedCodes(std::string_view group);

  // The deployment a rollback redeploys. Without `to`: the most recent deployment before the
  // latest whose code differs from the latest's. With `to`: deployment `to`, which must be
  // earlier than the latest and have other code. kNotFound when the group or deployment `to`
  // does not exist; kRefused when there is nothing to roll back to ("a rollback past the first
  // deployment").
  Result<Deployment> rollbackTarget(std::string_view group, std::optional<std::int64_t> to);

  // These yield the deployment as changed (kNotFound when it does not exist) and audit it.
  Result<Deployment> setPaused(std::string_view group, std::int64_t number, bool paused,
                               std::int64_t atMs, std::string_view actor);
  // resume += 1 and paused = false (a resume retries failed devices and unhalts).
  Result<Deployment> bumpResume(std::string_view group, std::int64_t number, std::int64_t atMs,
                                std::string_view actor);
  Result<Deployment> setFlagged(std::string_view group, std::int64_t number, bool flagged,
                                std::int64_t atMs, std::string_view actor);
  // Refused (kRefused) for a flagged deployment and for the group's latest (the live target).
  // Its number is never given out again; push history that names it is kept.
  Status deleteDeployment(std::string_view group, std::int64_t number, std::int64_t atMs,
                          std::string_view actor);

  // ---- Push history (what nodes report on the bus, copied in by impctl)

  // Appends `state` unless its state and reason equal the device's last recorded ones for that
  // deployment (nodes republish states; time and node are not compared); yields whether it
  // appended. Refused: an unknown
  // device (kNotFound), an unknown deployment (kNotFound), a code other than the deployment's
  // (kInvalidInput: "a hash nobody deployed"), an unknown state, a bad name or reason.
  Result<bool> recordPushState(const PushState& state);
  // Every state recorded for the device, oldest first.
  Result<std::vector<PushState>> pushHistory(std::string_view device);
  // For each device now in the group, its latest recorded state in this group (by id), if it
  // has one (kNotFound: no such group).
  Result<std::vector<PushState>> latestPushStates(std::string_view group);

 private:
  struct Statements {
    Statement insertVersion;
    Statement findVersion;
    Statement sameContent;
    Statement listVersions;
    Statement versionContent;
    Statement insertGroup;
    Statement findGroup;
    Statement listGroups;
    Statement activeDevices;
    Statement findDeviceGroup;
    Statement moveDevice;
    Statement takeNumber;
    Statement raiseMinSupported;
    Statement insertDeployment;
    Statement findDeployment;
    Statement latestDeployment;
    Statement deploymentBefore;
    Statement listDeployments;
    Statement supportedCodes;
    Statement setPaused;
    Statement bumpResume;
    Statement setFlagged;
    Statement deleteDeployment;
    Statement lastPushState;
    Statement insertPushState;
    Statement pushHistory;
    Statement latestPushStates;
  };
  CodeRegistry(Database& db, AuditLog audit, Statements stmts)
      : db_(&db), audit_(std::move(audit)), stmts_(std::move(stmts)) {}

  Result<std::optional<Deployment>> readOneDeployment(Statement& s);
  Status requireGroup(std::string_view group);
  Result<Deployment> changeDeployment(Statement& update, std::string_view group,
                                      std::int64_t number, std::optional<std::int64_t> value,
                                      std::int64_t atMs, std::string_view actor,
                                      const char* action);

  Database* db_;
  AuditLog audit_;
  Statements stmts_;
};

}  // namespace impgate::storage
