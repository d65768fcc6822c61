#include "storage/code_registry.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <utility>

#include "gateway/base/names.h"

namespace impgate::storage {
namespace {

constexpr char kVersionColumns[] = "sha, size, note, author, created_at, signature";

constexpr char kDeploymentSelect[] =
    "SELECT d.group_name, d.number, d.code_sha, v.size, d.stages, d.max_concurrent, "
    "d.halt_failures, d.min_supported, d.flagged, d.paused, d.resume, d.created_at, d.author, "
    "d.note FROM deployments d JOIN code_versions v ON v.sha = d.code_sha ";

constexpr char kGroupSelect[] =
    "SELECT g.name, g.created_at, count(d.id), count(d.id) - count(d.revoked_at), "
    "g.min_supported, g.next_deployment FROM device_groups g "
    "LEFT JOIN devices d ON d.group_name = g.name ";

constexpr char kPushColumns[] = "device, group_name, deployment, code_sha, state, reason, at, node";

constexpr const char* kPushStates[] = {"current",   "offered",  "transferring",
                                       "installed", "deferred", "failed"};

// The names of the rule isValidDeviceId() applies, for messages.
constexpr char kNameRule[] = "use 1-64 characters from A-Z a-z 0-9 . _ - (not starting with '.')";

bool isValidUtf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    std::size_t extra = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (extra >= text.size() - i) {
      return false;  // cut short
    }
    for (std::size_t k = 1; k <= extra; ++k) {
      auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    constexpr std::uint32_t kMinForLength[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[extra] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

// Notes and authors end up in JSON on the bus and on operators' terminals: UTF-8 without
// control characters (which could move a terminal's cursor), within a length.
Status checkText(std::string_view text, std::size_t maxBytes, const char* what) {
  if (text.size() > maxBytes) {
    return Error{ErrorCode::kInvalidInput,
                 std::string(what) + " is longer than " + std::to_string(maxBytes) + " bytes"};
  }
  if (!isValidUtf8(text)) {
    return Error{ErrorCode::kInvalidInput, std::string(what) + " is not valid UTF-8"};
  }
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return Error{ErrorCode::kInvalidInput,
                   std::string(what) + " contains a control character (one line of text only)"};
    }
  }
  return {};
}

Status checkSha(std::string_view sha, const char* what) {
  if (!isValidSha256Hex(sha)) {
    return Error{ErrorCode::kInvalidInput, std::string(what) + " '" +
                                               std::string(sha.substr(0, 80)) +
                                               "' is not a SHA-256 in hex (64 characters 0-9 a-f)"};
  }
  return {};
}

Status checkName(std::string_view name, const char* what) {
  if (!isValidDeviceId(name)) {
    return Error{ErrorCode::kInvalidName, "invalid " + std::string(what) + " '" +
                                              std::string(name.substr(0, 80)) + "': " + kNameRule};
  }
  return {};
}

std::string inQuotes(std::string_view name) {
  return "'" + std::string(name) + "'";
}

Error noGroup(std::string_view group) {
  return Error{ErrorCode::kNotFound, "group " + inQuotes(group) + " does not exist"};
}

Error noDeployment(std::string_view group, std::int64_t number) {
  return Error{ErrorCode::kNotFound,
               "group " + inQuotes(group) + " has no deployment " + std::to_string(number)};
}

std::string stagesText(const std::vector<int>& stages) {
  return nlohmann::json(stages).dump();
}

// Stages as stored by stagesText(); nullopt when the column is not a list of integers.
std::optional<std::vector<int>> parseStages(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) {
    return std::nullopt;
  }
  std::vector<int> stages;
  for (const nlohmann::json& s : j) {
    if (!s.is_number_integer()) {
      return std::nullopt;
    }
    stages.push_back(s.get<int>());
  }
  return stages;
}

CodeVersion readVersion(const Statement& s) {
  CodeVersion v{s.columnText(0), s.columnInt(1), s.columnText(2),
                s.columnText(3), s.columnInt(4), {}};
  std::vector<std::uint8_t> sig = s.columnBlob(5);
  // The schema's CHECK keeps the length at 64.
  std::copy_n(sig.begin(), std::min(sig.size(), v.signature.size()), v.signature.begin());
  return v;
}

PushState readPush(const Statement& s) {
  return PushState{s.columnText(0), s.columnText(1), s.columnInt(2), s.columnText(3),
                   s.columnText(4), s.columnText(5), s.columnInt(6), s.columnText(7)};
}

GroupInfo readGroup(const Statement& s) {
  return GroupInfo{s.columnText(0), s.columnInt(1),         s.columnInt(2),
                   s.columnInt(3),  s.columnOptionalInt(4), s.columnInt(5)};
}

Result<Deployment> readDeployment(const Statement& s) {
  Deployment d;
  d.group = s.columnText(0);
  d.number = s.columnInt(1);
  d.codeSha = s.columnText(2);
  d.codeSize = s.columnInt(3);
  std::optional<std::vector<int>> stages = parseStages(s.columnText(4));
  if (!stages) {
    return Error{ErrorCode::kSqlite, "deployment " + std::to_string(d.number) + " of group " +
                                         inQuotes(d.group) + " has unreadable stages '" +
                                         s.columnText(4) + "'"};
  }
  d.policy.stages = std::move(*stages);
  d.policy.maxConcurrent = s.columnInt(5);
  d.policy.haltFailuresPct = s.columnReal(6);
  d.minSupported = s.columnInt(7) != 0;
  d.flagged = s.columnInt(8) != 0;
  d.paused = s.columnInt(9) != 0;
  d.resume = s.columnInt(10);
  d.createdAtMs = s.columnInt(11);
  d.author = s.columnText(12);
  d.note = s.columnText(13);
  return d;
}

// Runs `s` (already bound) to the end, collecting each row with `read`.
template <typename T, typename Read>
Result<std::vector<T>> collect(Statement& s, Read read) {
  StatementReset done(s);
  std::vector<T> rows;
  for (;;) {
    Result<bool> row = s.step();
    if (!row) {
      return row.error();
    }
    if (!*row) {
      return rows;
    }
    rows.push_back(read(s));
  }
}

}  // namespace

bool isValidSha256Hex(std::string_view sha) {
  if (sha.size() != 64) {
    return false;
  }
  for (char c : sha) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

bool isValidPushState(std::string_view state) {
  for (const char* s : kPushStates) {
    if (state == s) {
      return true;
    }
  }
  return false;
}

std::optional<std::string> policyProblem(const RolloutPolicy& policy) {
  if (policy.stages.empty()) {
    return "a rollout needs at least one stage (100%)";
  }
  if (policy.stages.size() > kMaxStages) {
    return "a rollout has at most " + std::to_string(kMaxStages) + " stages";
  }
  int previous = 0;
  for (int stage : policy.stages) {
    if (stage < 1 || stage > 100) {
      return "stage " + std::to_string(stage) + "% is outside 1..100";
    }
    if (stage <= previous) {
      return "stages must increase strictly (" + std::to_string(stage) + "% after " +
             std::to_string(previous) + "%)";
    }
    previous = stage;
  }
  if (previous != 100) {
    return "the last stage must be 100% (it is " + std::to_string(previous) + "%)";
  }
  if (policy.maxConcurrent < 0) {
    return "max concurrent transfers must be 0 (unbounded) or more";
  }
  if (!std::isfinite(policy.haltFailuresPct) || policy.haltFailuresPct < 0 ||
      policy.haltFailuresPct > 100) {
    return "the halt threshold must be a percentage from 0 to 100 (100 never halts)";
  }
  return std::nullopt;
}

Result<CodeRegistry> CodeRegistry::open(Database& db) {
  Result<AuditLog> audit = AuditLog::open(db);
  if (!audit) {
    return audit.error();
  }
  const std::string versionColumns = kVersionColumns;
  const std::string deployment = kDeploymentSelect;
  const std::string group = kGroupSelect;
  const std::string push = kPushColumns;
  Statements stmts;
  const std::pair<Statement*, std::string> plan[] = {
      {&stmts.insertVersion, "INSERT INTO code_versions(" + versionColumns +
                                 ", content) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
      {&stmts.findVersion, "SELECT " + versionColumns + " FROM code_versions WHERE sha = ?1"},
      {&stmts.sameContent, "SELECT content = ?2 FROM code_versions WHERE sha = ?1"},
      {&stmts.listVersions,
       "SELECT " + versionColumns + " FROM code_versions ORDER BY created_at, sha"},
      {&stmts.versionContent, "SELECT content FROM code_versions WHERE sha = ?1"},
      {&stmts.insertGroup,
       "INSERT INTO device_groups(name, created_at) VALUES(?1, ?2) ON CONFLICT(name) DO NOTHING"},
      {&stmts.findGroup, group + "WHERE g.name = ?1 GROUP BY g.name"},
      {&stmts.listGroups, group + "GROUP BY g.name ORDER BY g.name"},
      {&stmts.activeDevices,
       "SELECT id FROM devices WHERE group_name = ?1 AND revoked_at IS NULL ORDER BY id"},
      {&stmts.findDeviceGroup, "SELECT group_name FROM devices WHERE id = ?1"},
      {&stmts.moveDevice, "UPDATE devices SET group_name = ?2 WHERE id = ?1"},
      {&stmts.takeNumber, "UPDATE device_groups SET next_deployment = ?2 WHERE name = ?1"},
      {&stmts.raiseMinSupported,
       "UPDATE device_groups SET min_supported = ?2 "
       "WHERE name = ?1 AND (min_supported IS NULL OR min_supported < ?2)"},
      {&stmts.insertDeployment,
       "INSERT INTO deployments(group_name, number, code_sha, stages, max_concurrent, "
       "halt_failures, min_supported, created_at, author, note) "
       "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"},
      {&stmts.findDeployment, deployment + "WHERE d.group_name = ?1 AND d.number = ?2"},
      {&stmts.latestDeployment,
       deployment + "WHERE d.group_name = ?1 ORDER BY d.number DESC LIMIT 1"},
      {&stmts.deploymentBefore,
       deployment + "WHERE d.group_name = ?1 AND d.number < ?2 ORDER BY d.number DESC LIMIT 1"},
      {&stmts.listDeployments, deployment + "WHERE d.group_name = ?1 ORDER BY d.number"},
      {&stmts.supportedCodes,
       "SELECT d.code_sha FROM deployments d JOIN device_groups g ON g.name = d.group_name "
       "WHERE d.group_name = ?1 AND d.number >= coalesce(g.min_supported, 0) "
       "GROUP BY d.code_sha ORDER BY max(d.number)"},
      {&stmts.setPaused,
       "UPDATE deployments SET paused = ?3 WHERE group_name = ?1 AND number = ?2"},
      {&stmts.bumpResume,
       "UPDATE deployments SET resume = resume + 1, paused = 0 "
       "WHERE group_name = ?1 AND number = ?2"},
      {&stmts.setFlagged,
       "UPDATE deployments SET flagged = ?3 WHERE group_name = ?1 AND number = ?2"},
      {&stmts.deleteDeployment, "DELETE FROM deployments WHERE group_name = ?1 AND number = ?2"},
      {&stmts.lastPushState,
       "SELECT state, reason FROM push_history "
       "WHERE device = ?1 AND group_name = ?2 AND deployment = ?3 ORDER BY id DESC LIMIT 1"},
      {&stmts.insertPushState,
       "INSERT INTO push_history(" + push + ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"},
      {&stmts.pushHistory, "SELECT " + push + " FROM push_history WHERE device = ?1 ORDER BY id"},
      // A device's latest row in the group, for the devices the group holds now.
      {&stmts.latestPushStates,
       "SELECT p.device, p.group_name, p.deployment, p.code_sha, p.state, p.reason, p.at, "
       "p.node FROM push_history p JOIN devices d ON d.id = p.device AND d.group_name = ?1 "
       "WHERE p.id = (SELECT max(q.id) FROM push_history q "
       "WHERE q.device = p.device AND q.group_name = ?1) ORDER BY p.device"},
  };
  for (const auto& [target, sql] : plan) {
    Result<Statement> prepared = db.prepare(sql);
    if (!prepared) {
      return prepared.error();
    }
    *target = std::move(prepared).value();
  }
  return CodeRegistry(db, std::move(audit).value(), std::move(stmts));
}

// ---- Versions

Result<AddedVersion> CodeRegistry::addVersion(const NewCodeVersion& v) {
  if (Status s = checkSha(v.sha, "code hash"); !s) {
    return s.error();
  }
  if (v.content.empty()) {
    return Error{ErrorCode::kInvalidInput, "the code is empty"};
  }
  if (static_cast<std::int64_t>(v.content.size()) > kMaxStoredCodeSize) {
    return Error{ErrorCode::kInvalidInput, "the code is " + std::to_string(v.content.size()) +
                                               " bytes; at most " +
                                               std::to_string(kMaxStoredCodeSize) + " are allowed"};
  }
  if (v.size != static_cast<std::int64_t>(v.content.size())) {
    return Error{ErrorCode::kInvalidInput, "the size given (" + std::to_string(v.size) +
                                               ") is not the code's size (" +
                                               std::to_string(v.content.size()) + ")"};
  }
  if (Status s = checkText(v.note, kMaxNoteLength, "the note"); !s) {
    return s.error();
  }
  if (Status s = checkText(v.author, kMaxAuthorLength, "the author"); !s) {
    return s.error();
  }

  Result<Transaction> txn = Transaction::begin(*db_);
  if (!txn) {
    return txn.error();
  }
  Result<std::optional<CodeVersion>> existing = version(v.sha);
  if (!existing) {
    return existing.error();
  }
  if (*existing) {
    Statement& same = stmts_.sameContent;
    StatementReset done(same);
    same.bind(1, v.sha).bindBlob(2, v.content);
    Result<bool> row = same.step();
    if (!row) {
      return row.error();
    }
    if (!*row || same.columnInt(0) != 1) {
      return Error{ErrorCode::kAlreadyExists,
                   "version " + v.sha + " is stored with other bytes; the hash given is wrong"};
    }
    return AddedVersion{**existing, true};  // the transaction rolls back: nothing was written
  }
  {
    Statement& insert = stmts_.insertVersion;
    StatementReset done(insert);
    insert.bind(1, v.sha)
        .bind(2, v.size)
        .bind(3, v.note)
        .bind(4, v.author)
        .bind(5, v.createdAtMs)
        .bindBlob(6, v.signature)
        .bindBlob(7, v.content);
    if (Result<std::int64_t> r = insert.run(); !r) {
      return r.error();
    }
  }
  nlohmann::json detail = {{"code", v.sha}, {"size", v.size}, {"note", v.note}};
  if (Status s = audit_.append(AuditEntry{v.createdAtMs, v.author, "code.add", detail.dump()});
      !s) {
    return s.error();
  }
  if (Status s = txn->commit(); !s) {
    return s.error();
  }
  return AddedVersion{CodeVersion{v.sha, v.size, v.note, v.author, v.createdAtMs, v.signature},
                      false};
}

Result<std::optional<CodeVersion>> CodeRegistry::version(std::string_view sha) {
  Statement& s = stmts_.findVersion;
  StatementReset done(s);
  s.bind(1, sha);
  Result<bool> row = s.step();
  if (!row) {
    return row.error();
  }
  if (!*row) {
    return std::optional<CodeVersion>();
  }
  return std::optional<CodeVersion>(readVersion(s));
}

Result<std::vector<CodeVersion>> CodeRegistry::listVersions() {
  return collect<CodeVersion>(stmts_.listVersions, readVersion);
}

Result<std::vector<std::uint8_t>> CodeRegistry::versionContent(std::string_view sha) {
  Statement& s = stmts_.versionContent;
  StatementReset done(s);
  s.bind(1, sha);
  Result<bool> row = s.step();
  if (!row) {
    return row.error();
  }
  if (!*row) {
    return Error{ErrorCode::kNotFound, "no version " + std::string(sha.substr(0, 80))};
  }
  return s.columnBlob(0);
}

// ---- Groups

Status CodeRegistry::createGroup(std::string_view name, std::int64_t atMs, std::string_view actor) {
  if (Status s = checkName(name, "group name"); !s) {
    return s;
  }
  Result<Transaction> txn = Transaction::begin(*db_);
  if (!txn) {
    return txn.error();
  }
  Result<std::int64_t> inserted = [&] {
    StatementReset done(stmts_.insertGroup);
    return stmts_.insertGroup.bind(1, name).bind(2, atMs).run();
  }();
  if (!inserted) {
    return inserted.error();
  }
  if (*inserted == 0) {
    return Error{ErrorCode::kAlreadyExists, "group " + inQuotes(name) + " already exists"};
  }
  nlohmann::json detail = {{"group", name}};
  if (Status s = audit_.append(AuditEntry{atMs, std::string(actor), "group.create", detail.dump()});
      !s) {
    return s;
  }
  return txn->commit();
}

Result<std::optional<GroupInfo>> CodeRegistry::group(std::string_view name) {
  Statement& s = stmts_.findGroup;
  StatementReset done(s);
  s.bind(1, name);
  Result<bool> row = s.step();
  if (!row) {
    return row.error();
  }
  if (!*row) {
    return std::optional<GroupInfo>();
  }
  return std::optional<GroupInfo>(readGroup(s));
}

Result<bool> CodeRegistry::groupExists(std::string_view name) {
  Result<std::optional<GroupInfo>> g = group(name);
  if (!g) {
    return g.error();
  }
  return g->has_value();
}

Status CodeRegistry::requireGroup(std::string_view group) {
  Result<bool> exists = groupExists(group);
  if (!exists) {
    return exists.error();
  }
  if (!*exists) {
    return noGroup(group);
  }
  return {};
}

Result<std::vector<GroupInfo>> CodeRegistry::listGroups() {
  return collect<GroupInfo>(stmts_.listGroups, readGroup);
}

Result<std::vector<std::string>> CodeRegistry::activeDevices(std::string_view group) {
  if (Status s = requireGroup(group); !s) {
    return s.error();
  }
  stmts_.activeDevices.bind(1, group);
  return collect<std::string>(stmts_.activeDevices,
                              [](const Statement& s) { return s.columnText(0); });
}

Result<std::string> CodeRegistry::moveDevice(std::string_view id, std::string_view group,
                                             std::int64_t atMs, std::string_view actor) {
  if (Status s = checkName(id, "device id"); !s) {
    return s.error();
  }
  if (Status s = checkName(group, "group name"); !s) {
    return s.error();
  }
  Result<Transaction> txn = Transaction::begin(*db_);
  if (!txn) {
    return txn.error();
  }
  Result<std::optional<std::string>> from = [&]() -> Result<std::optional<std::string>> {
    Statement& s = stmts_.findDeviceGroup;
    StatementReset done(s);
    s.bind(1, id);
    Result<bool> row = s.step();
    if (!row) {
      return row.error();
    }
    return *row ? std::optional<std::string>(s.columnText(0)) : std::nullopt;
  }();
  if (!from) {
    return from.error();
  }
  if (!*from) {
    return Error{ErrorCode::kNotFound, "device " + inQuotes(id) + " is not enrolled"};
  }
  if (Status s = requireGroup(group); !s) {
    return s.error();
  }
  if (**from == group) {
    return **from;
  }
  {
    StatementReset done(stmts_.moveDevice);
    if (Result<std::int64_t> r = stmts_.moveDevice.bind(1, id).bind(2, group).run(); !r) {
      return r.error();
    }
  }
  nlohmann::json detail = {{"id", id}, {"from", **from}, {"to", group}};
  if (Status s = audit_.append(AuditEntry{atMs, std::string(actor), "device.move", detail.dump()});
      !s) {
    return s.error();
  }
  if (Status s = txn->commit(); !s) {
    return s.error();
  }
  return **from;
}

// ---- Deployments

Result<std::optional<Deployment>> CodeRegistry::readOneDeployment(Statement& s) {
  StatementReset done(s);
  Result<bool> row = s.step();
  if (!row) {
    return row.error();
  }
  if (!*row) {
    return std::optional<Deployment>();
  }
  Result<Deployment> d = readDeployment(s);
  if (!d) {
    return d.error();
  }
  return std::optional<Deployment>(std::move(d).value());
}

Result<std::int64_t> CodeRegistry::createDeployment(std::string_view group,
                                                    std::string_view codeSha,
                                                    const RolloutPolicy& policy, bool minSupported,
                                                    std::string_view author, std::string_view note,
                                                    std::int64_t atMs) {
  if (Status s = checkName(group, "group name"); !s) {
    return s.error();
  }
  if (Status s = checkSha(codeSha, "code hash"); !s) {
    return s.error();
  }
  if (std::optional<std::string> problem = policyProblem(policy)) {
    return Error{ErrorCode::kInvalidInput, "invalid rollout policy: " + *problem};
  }
  if (Status s = checkText(note, kMaxNoteLength, "the note"); !s) {
    return s.error();
  }
  if (Status s = checkText(author, kMaxAuthorLength, "the author"); !s) {
    return s.error();
  }

  // IMMEDIATE: the group's counter is read under the write lock, so a second process
  // deploying to the same group waits here and then reads the number after ours.
  Result<Transaction> txn = Transaction::begin(*db_);
  if (!txn) {
    return txn.error();
  }
  Result<std::optional<GroupInfo>> g = this->group(group);
  if (!g) {
    return g.error();
  }
  if (!*g) {
    return noGroup(group);
  }
  Result<std::optional<CodeVersion>> v = version(codeSha);
  if (!v) {
    return v.error();
  }
  if (!*v) {
    return Error{ErrorCode::kNotFound, "no version " + std::string(codeSha) + " is stored"};
  }
  const std::int64_t number = (*g)->nextDeployment;
  {
    StatementReset done(stmts_.takeNumber);
    if (Result<std::int64_t> r = stmts_.takeNumber.bind(1, group).bind(2, number + 1).run(); !r) {
      return r.error();
    }
  }
  {
    Statement& insert = stmts_.insertDeployment;
    StatementReset done(insert);
    insert.bind(1, group)
        .bind(2, number)
        .bind(3, codeSha)
        .bind(4, stagesText(policy.stages))
        .bind(5, policy.maxConcurrent)
        .bindReal(6, policy.haltFailuresPct)
        .bind(7, std::int64_t{minSupported ? 1 : 0})
        .bind(8, atMs)
        .bind(9, author)
        .bind(10, note);
    if (Result<std::int64_t> r = insert.run(); !r) {
      return r.error();
    }
  }
  if (minSupported) {
    StatementReset done(stmts_.raiseMinSupported);
    if (Result<std::int64_t> r = stmts_.raiseMinSupported.bind(1, group).bind(2, number).run();
        !r) {
      return r.error();
    }
  }
  nlohmann::json detail = {{"group", group},
                           {"deployment", number},
                           {"code", codeSha},
                           {"stages", policy.stages},
                           {"max_concurrent", policy.maxConcurrent},
                           {"halt_failures", policy.haltFailuresPct},
                           {"min_supported", minSupported},
                           {"note", note}};
  if (Status s = audit_.append(AuditEntry{atMs, std::string(author), "code.deploy", detail.dump()});
      !s) {
    return s.error();
  }
  if (Status s = txn->commit(); !s) {
    return s.error();
  }
  return number;
}

Result<std::optional<Deployment>> CodeRegistry::latestDeployment(std::string_view group) {
  if (Status s = requireGroup(group); !s) {
    return s.error();
  }
  stmts_.latestDeployment.bind(1, group);
  return readOneDeployment(stmts_.latestDeployment);
}

Result<std::optional<Deployment>> CodeRegistry::deployment(std::string_view group,
                                                           std::int64_t number) {
  stmts_.findDeployment.bind(1, group).bind(2, number);
  return readOneDeployment(stmts_.findDeployment);
}

Result<std::optional<Deployment>> CodeRegistry::deploymentBefore(std::string_view group,
                                                                 std::int64_t number) {
  stmts_.deploymentBefore.bind(1, group).bind(2, number);
  return readOneDeployment(stmts_.deploymentBefore);
}

Result<std::vector<Deployment>> CodeRegistry::listDeployments(std::string_view group) {
  if (Status s = requireGroup(group); !s) {
    return s.error();
  }
  Statement& s = stmts_.listDeployments;
  StatementReset done(s);
  s.bind(1, group);
  std::vector<Deployment> rows;
  for (;;) {
    Result<bool> row = s.step();
    if (!row) {
      return row.error();
    }
    if (!*row) {
      return rows;
    }
    Result<Deployment> d = readDeployment(s);
    if (!d) {
      return d.error();
    }
    rows.push_back(std::move(d).value());
  }
}

Result<std::vector<std::string>> CodeRegistry::supportedCodes(std::string_view group) {
  if (Status s = requireGroup(group); !s) {
    return s.error();
  }
  stmts_.supportedCodes.bind(1, group);
  return collect<std::string>(stmts_.supportedCodes,
                              [](const Statement& s) { return s.columnText(0); });
}

Result<Deployment> CodeRegistry::rollbackTarget(std::string_view group,
                                                std::optional<std::int64_t> to) {
  Result<std::optional<Deployment>> latest = latestDeployment(group);
  if (!latest) {
    return latest.error();
  }
  if (!*latest) {
    return Error{ErrorCode::kRefused,
                 "group " + inQuotes(group) + " has no deployments; there is nothing to roll back"};
  }
  const Deployment& live = **latest;
  if (to) {
    if (*to >= live.number) {
      return Error{ErrorCode::kRefused, "deployment " + std::to_string(*to) +
                                            " is not earlier than group " + inQuotes(group) +
                                            "'s latest (" + std::to_string(live.number) + ")"};
    }
    Result<std::optional<Deployment>> target = deployment(group, *to);
    if (!target) {
      return target.error();
    }
    if (!*target) {
      Result<std::vector<Deployment>> all = listDeployments(group);
      if (all && !all->empty() && *to < all->front().number) {
        return Error{ErrorCode::kRefused, "a rollback past the first deployment: group " +
                                              inQuotes(group) + " has no deployment " +
                                              std::to_string(*to) + " (its first is " +
                                              std::to_string(all->front().number) + ")"};
      }
      return noDeployment(group, *to);
    }
    if ((*target)->codeSha == live.codeSha) {
      return Error{ErrorCode::kRefused,
                   "deployment " + std::to_string(*to) + " has the code group " + inQuotes(group) +
                       " already runs (deployment " + std::to_string(live.number) + ")"};
    }
    return std::move(**target);
  }
  std::int64_t before = live.number;
  for (;;) {
    Result<std::optional<Deployment>> earlier = deploymentBefore(group, before);
    if (!earlier) {
      return earlier.error();
    }
    if (!*earlier) {
      return Error{ErrorCode::kRefused, "a rollback past the first deployment: group " +
                                            inQuotes(group) + " has no deployment before " +
                                            std::to_string(live.number) + " with other code than " +
                                            live.codeSha};
    }
    if ((*earlier)->codeSha != live.codeSha) {
      return std::move(**earlier);
    }
    before = (*earlier)->number;
  }
}

Result<Deployment> CodeRegistry::changeDeployment(Statement& update, std::string_view group,
                                                  std::int64_t number,
                                                  std::optional<std::int64_t> value,
                                                  std::int64_t atMs, std::string_view actor,
                                                  const char* action) {
  Result<Transaction> txn = Transaction::begin(*db_);
  if (!txn) {
    return txn.error();
  }
  Result<std::int64_t> changed = [&] {
    StatementReset done(update);
    update.bind(1, group).bind(2, number);
    if (value) {
      update.bind(3, *value);
    }
    return update.run();
  }();
  if (!changed) {
    return changed.error();
  }
  if (*changed == 0) {
    return noDeployment(group, number);
  }
  Result<std::optional<Deployment>> now = deployment(group, number);
  if (!now) {
    return now.error();
  }
  nlohmann::json detail = {{"group", group}, {"deployment", number}};
  if (value) {
    detail["value"] = *value != 0;
  } else {
    detail["resume"] = (*now)->resume;
  }
  if (Status s = audit_.append(AuditEntry{atMs, std::string(actor), action, detail.dump()}); !s) {
    return s.error();
  }
  if (Status s = txn->commit(); !s) {
    return s.error();
  }
  return std::move(**now);
}

Result<Deployment> CodeRegistry::setPaused(std::string_view group, std::int64_t number, bool paused,
                                           std::int64_t atMs, std::string_view actor) {
  return changeDeployment(stmts_.setPaused, group, number, std::int64_t{paused ? 1 : 0}, atMs,
                          actor, "code.pause");
}

Result<Deployment> CodeRegistry::bumpResume(std::string_view group, std::int64_t number,
                                            std::int64_t atMs, std::string_view actor) {
  return changeDeployment(stmts_.bumpResume, group, number, std::nullopt, atMs, actor,
                          "code.resume");
}

Result<Deployment> CodeRegistry::setFlagged(std::string_view group, std::int64_t number,
                                            bool flagged, std::int64_t atMs,
                                            std::string_view actor) {
  return changeDeployment(stmts_.setFlagged, group, number, std::int64_t{flagged ? 1 : 0}, atMs,
                          actor, "code.flag");
}

Status CodeRegistry::deleteDeployment(std::string_view group, std::int64_t number,
                                      std::int64_t atMs, std::string_view actor) {
  Result<Transaction> txn = Transaction::begin(*db_);
  if (!txn) {
    return txn.error();
  }
  Result<std::optional<Deployment>> target = deployment(group, number);
  if (!target) {
    return target.error();
  }
  if (!*target) {
    return noDeployment(group, number);
  }
  if ((*target)->flagged) {
    return Error{ErrorCode::kRefused, "deployment " + std::to_string(number) + " of group " +
                                          inQuotes(group) +
                                          " is flagged and cannot be deleted; unflag it first"};
  }
  Result<std::optional<Deployment>> latest = latestDeployment(group);
  if (!latest) {
    return latest.error();
  }
  if (*latest && (*latest)->number == number) {
    return Error{ErrorCode::kRefused,
                 "deployment " + std::to_string(number) + " is group " + inQuotes(group) +
                     "'s live target and cannot be deleted; deploy or roll back first"};
  }
  {
    StatementReset done(stmts_.deleteDeployment);
    if (Result<std::int64_t> r = stmts_.deleteDeployment.bind(1, group).bind(2, number).run(); !r) {
      return r.error();
    }
  }
  nlohmann::json detail = {{"group", group}, {"deployment", number}, {"code", (*target)->codeSha}};
  if (Status s = audit_.append(AuditEntry{atMs, std::string(actor), "code.delete", detail.dump()});
      !s) {
    return s;
  }
  return txn->commit();
}

// ---- Push history

Result<bool> CodeRegistry::recordPushState(const PushState& p) {
  if (Status s = checkName(p.device, "device id"); !s) {
    return s.error();
  }
  if (Status s = checkName(p.group, "group name"); !s) {
    return s.error();
  }
  if (Status s = checkName(p.node, "node name"); !s) {
    return s.error();
  }
  if (Status s = checkSha(p.codeSha, "code hash"); !s) {
    return s.error();
  }
  if (!isValidPushState(p.state)) {
    return Error{ErrorCode::kInvalidInput,
                 "unknown push state '" + p.state.substr(0, 40) +
                     "' (current, offered, transferring, installed, deferred, failed)"};
  }
  // Reasons come from devices: kept as sent (displays escape them), but they must be text.
  if (p.reason.size() > kMaxReasonLength || !isValidUtf8(p.reason)) {
    return Error{ErrorCode::kInvalidInput, "the reason is not UTF-8 text of at most " +
                                               std::to_string(kMaxReasonLength) + " bytes"};
  }

  Result<Transaction> txn = Transaction::begin(*db_);
  if (!txn) {
    return txn.error();
  }
  {
    Statement& s = stmts_.findDeviceGroup;
    StatementReset done(s);
    Result<bool> row = s.bind(1, p.device).step();
    if (!row) {
      return row.error();
    }
    if (!*row) {
      return Error{ErrorCode::kNotFound, "device " + inQuotes(p.device) + " is not enrolled"};
    }
  }
  Result<std::optional<Deployment>> d = deployment(p.group, p.deployment);
  if (!d) {
    return d.error();
  }
  if (!*d) {
    return noDeployment(p.group, p.deployment);
  }
  if ((*d)->codeSha != p.codeSha) {
    return Error{ErrorCode::kInvalidInput,
                 "device " + inQuotes(p.device) + " reported code " + p.codeSha +
                     " for deployment " + std::to_string(p.deployment) + " of group " +
                     inQuotes(p.group) + ", which deploys " + (*d)->codeSha};
  }
  {
    Statement& s = stmts_.lastPushState;
    StatementReset done(s);
    Result<bool> row = s.bind(1, p.device).bind(2, p.group).bind(3, p.deployment).step();
    if (!row) {
      return row.error();
    }
    if (*row && s.columnText(0) == p.state && s.columnText(1) == p.reason) {
      return false;  // a repeat of what is recorded; the transaction rolls back, unchanged
    }
  }
  {
    Statement& s = stmts_.insertPushState;
    StatementReset done(s);
    s.bind(1, p.device)
        .bind(2, p.group)
        .bind(3, p.deployment)
        .bind(4, p.codeSha)
        .bind(5, p.state)
        .bind(6, p.reason)
        .bind(7, p.atMs)
        .bind(8, p.node);
    if (Result<std::int64_t> r = s.run(); !r) {
      return r.error();
    }
  }
  if (Status s = txn->commit(); !s) {
    return s.error();
  }
  return true;
}

Result<std::vector<PushState>> CodeRegistry::pushHistory(std::string_view device) {
  stmts_.pushHistory.bind(1, device);
  return collect<PushState>(stmts_.pushHistory, readPush);
}

Result<std::vector<PushState>> CodeRegistry::latestPushStates(std::string_view group) {
  if (Status s = requireGroup(group); !s) {
    return s.error();
  }
  stmts_.latestPushStates.bind(1, group);
  return collect<PushState>(stmts_.latestPushStates, readPush);
}

}  // namespace impgate::storage
