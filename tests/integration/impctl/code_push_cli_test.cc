// The code-push commands of the real impctl binary (group, device move, code deploy / publish /
// rollback / pause / resume / list / history / status) against a real mosquitto, in a
// temporary home made by `impctl ca init`. What they publish is read back from the broker and
// checked with the home's code-signing.pub, the way a gateway node checks it; what they record
// is read back from the registry file.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bus/fleet/descriptors.h"
#include "bus/fleet/envelope.h"
#include "bus/topics/topic_scheme.h"
#include "gateway/base/code/chunker.h"
#include "gateway/base/code/hex.h"
#include "gateway/base/code/manifest.h"
#include "gateway/base/code/sha256.h"
#include "gateway/base/pki/code_signing.h"
#include "storage/code_registry.h"
#include "storage/database.h"
#include "tests/support/mqtt_probe.h"
#include "tests/support/testbed.h"
#include "tools/impctl/fleet_bus.h"

namespace fleet = impgate::bus::fleet;
using impgate::impctl::BusOptions;
using impgate::impctl::FleetBus;
using impgate::testing::freeLoopbackPort;
using impgate::testing::MosquittoFixture;
using impgate::testing::MqttProbe;
using impgate::testing::TempDir;
using namespace std::chrono_literals;

namespace {

struct Ran {
  int rc = -1;
  std::string out;
  std::string err;
};

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const std::filesystem::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// A running impctl; wait() collects its exit code and output.
class Impctl {
 public:
  Impctl(const std::filesystem::path& dir, const std::vector<std::string>& args) {
    static int serial = 0;
    ++serial;
    outPath_ = dir / ("impctl-" + std::to_string(serial) + ".out");
    errPath_ = dir / ("impctl-" + std::to_string(serial) + ".err");
    std::vector<std::string> argv{IMPCTL_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    // Everything the child needs is made before fork(): the test runs MQTT client threads.
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      std::string_view entry(*e);
      if (entry.rfind("IMPGATE_BROKER=", 0) == 0 || entry.rfind("IMPGATE_HOME=", 0) == 0) continue;
      env.emplace_back(entry);
    }
    std::vector<char*> cenv;
    for (auto& e : env) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      int out = ::open(outPath_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int err = ::open(errPath_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(out, 1);
      ::dup2(err, 2);
      ::execve(cargv[0], cargv.data(), cenv.data());
      ::_exit(127);
    }
  }
  ~Impctl() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  // Waits at most `deadline` (then kills it: rc -1).
  Ran wait(std::chrono::milliseconds deadline = 120s) {
    Ran ran;
    auto until = std::chrono::steady_clock::now() + deadline;
    int status = 0;
    while (true) {
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        ran.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        break;
      }
      if (std::chrono::steady_clock::now() > until) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    ran.out = slurp(outPath_);
    ran.err = slurp(errPath_);
    return ran;
  }

 private:
  pid_t pid_ = -1;
  std::filesystem::path outPath_;
  std::filesystem::path errPath_;
};

// A fleet home with a CA, the signing key and enrolled devices, next to a broker.
struct Fleet {
  TempDir dir{"impctl-code"};
  std::filesystem::path home = dir / "home";
  MosquittoFixture broker;
  impgate::bus::TopicScheme topics;

  Fleet() {
    REQUIRE(run({"ca", "init"}).rc == 0);
    REQUIRE(run({"device", "enroll", "k-", "--count", "5", "--group", "kitchen"}).rc == 0);
  }

  // impctl --home HOME ARGS...; bus commands get --broker unless they name one.
  Ran run(std::vector<std::string> args, bool withBroker = false) {
    std::vector<std::string> all{"--home", home.string()};
    all.insert(all.end(), args.begin(), args.end());
    if (withBroker) {
      all.push_back("--broker");
      all.push_back(broker.uri());
    }
    Impctl p(dir.path(), all);
    Ran ran = p.wait();
    INFO("impctl " << args[0] << (args.size() > 1 ? " " + args[1] : "") << " rc " << ran.rc
                   << "\nstdout: " << ran.out << "\nstderr: " << ran.err);
    CHECK(ran.rc != -1);
    return ran;
  }
  Ran bus(std::vector<std::string> args) { return run(std::move(args), true); }

  std::filesystem::path file(const std::string& name, const std::vector<uint8_t>& bytes) {
    std::filesystem::path p = dir / name;
    spit(p, bytes);
    return p;
  }

  std::map<std::string, std::string> retained(const std::string& filter) {
    BusOptions options;
    options.broker = broker.uri();
    auto bus = FleetBus::connect(options);
    REQUIRE(bus.ok());
    auto got = (*bus)->collectRetained(filter, 30s);
    REQUIRE(got.ok());
    return *got;
  }

  impgate::pki::PkeyPtr verifyKey() {
    auto key = impgate::pki::readVerifyKey(home / "ca" / "code-signing.pub");
    REQUIRE(key.ok());
    return std::move(key).value();
  }

  fleet::Verifier verifier() {
    auto key = std::make_shared<impgate::pki::PkeyPtr>(verifyKey());
    return [key](std::string_view body, std::span<const uint8_t, 64> signature) {
      return impgate::pki::verifyDescriptor(key->get(), body, signature);
    };
  }

  // The group's deployment as retained, verified with the home's code-signing.pub.
  fleet::DeploymentBody deployment(const std::string& group) {
    auto all = retained(topics.groupDeploy(group));
    REQUIRE(all.size() == 1);
    auto body = fleet::openDeployment(all.begin()->second, verifier());
    INFO((body.ok() ? "" : body.error().message));
    REQUIRE(body.ok());
    return *body;
  }

  nlohmann::json json(std::vector<std::string> args, bool withBroker = false) {
    Ran ran = run(std::move(args), withBroker);
    REQUIRE(ran.rc == 0);
    nlohmann::json j = nlohmann::json::parse(ran.out, nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    return j;
  }

  std::vector<std::int64_t> deploymentNumbers(const std::string& group) {
    std::vector<std::int64_t> numbers;
    for (const auto& d : json({"code", "history", "--group", group, "--json"})) {
      numbers.push_back(d["deployment"].get<std::int64_t>());
    }
    return numbers;
  }
};

std::vector<uint8_t> randomBytes(std::size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

std::string shaHex(const std::vector<uint8_t>& bytes) {
  return impgate::code::toHex(impgate::code::sha256(bytes));
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE(
    "code deploy publishes the chunks, the version, every assignment and last the signed "
    "deployment") {
  Fleet f;
  MqttProbe watcher(f.broker.uri());
  REQUIRE(watcher.connect());
  REQUIRE(watcher.subscribe("imp/#"));

  const std::vector<uint8_t> code = randomBytes(64 * 1024, 1);
  const std::string sha = shaHex(code);
  Ran ran =
      f.bus({"code", "deploy", f.file("v1.bin", code).string(), "--group", "kitchen", "--note",
             "first", "--stage", "10%,100%", "--max-concurrent", "2", "--halt-failures", "5"});
  REQUIRE(ran.rc == 0);
  const impgate::code::Manifest manifest = impgate::code::buildManifest(code);
  CHECK(contains(ran.out, "deployment 1 of group kitchen"));
  CHECK(contains(ran.out, sha));
  CHECK(contains(ran.out, "65536 bytes, " + std::to_string(manifest.chunks.size()) + " chunks"));
  CHECK(contains(ran.out, "10%,100%"));

  // Every chunk, under its hash, with its bytes.
  auto chunks = f.retained(f.topics.allCodeChunks());
  std::set<std::string> distinct;
  for (const auto& c : manifest.chunks) {
    std::string hex = impgate::code::toHex(c.sha);
    distinct.insert(hex);
    auto it = chunks.find(f.topics.codeChunk(hex));
    REQUIRE(it != chunks.end());
    CHECK(it->second == std::string(code.begin() + c.offset, code.begin() + c.offset + c.length));
  }
  CHECK(chunks.size() == distinct.size());

  // The version descriptor, its code signature good under the home's verify key.
  auto versions = f.retained(f.topics.allCodeVersions());
  REQUIRE(versions.size() == 1);
  auto version = fleet::decodeVersionDescriptor(versions.at(f.topics.codeVersion(sha)));
  REQUIRE(version.ok());
  CHECK(version->code == sha);
  CHECK(version->size == code.size());
  CHECK(version->chunks.size() == manifest.chunks.size());
  CHECK(version->note == "first");
  auto pub = f.verifyKey();
  CHECK(impgate::pki::verifyCode(pub.get(), impgate::code::sha256(code),
                                 static_cast<uint32_t>(code.size()), version->signature));

  // A signed assignment for each of the group's devices.
  auto assignments = f.retained(f.topics.allDeviceGroups());
  CHECK(assignments.size() == 5);
  for (int i = 1; i <= 5; ++i) {
    std::string id = "k-0000" + std::to_string(i);
    auto it = assignments.find(f.topics.deviceGroup(id));
    REQUIRE(it != assignments.end());
    auto a = fleet::openGroupAssignment(it->second, f.verifier());
    REQUIRE(a.ok());
    CHECK(a->device == id);
    CHECK(a->group == "kitchen");
  }

  // The deployment: signed, and what was asked.
  fleet::DeploymentBody d = f.deployment("kitchen");
  CHECK(d.group == "kitchen");
  CHECK(d.deployment == 1);
  CHECK(d.code == sha);
  CHECK(d.size == code.size());
  CHECK(d.supported == std::vector<std::string>{sha});
  CHECK(d.stages == std::vector<uint32_t>{10, 100});
  CHECK(d.maxConcurrent == 2);
  CHECK(d.haltFailures == 5.0);
  CHECK(d.devices == 5);
  CHECK_FALSE(d.paused);
  CHECK(d.resume == 0);
  CHECK(d.note == "first");
  CHECK(d.author.rfind("impctl:", 0) == 0);

  // The deployment arrived after everything it names.
  REQUIRE(watcher.waitForTopic(f.topics.groupDeploy("kitchen"), 5s));
  auto seen = watcher.messages();
  std::size_t deployAt = seen.size();  // its first arrival
  std::size_t lastOther = 0;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    if (seen[i].topic == f.topics.groupDeploy("kitchen")) {
      deployAt = std::min(deployAt, i);
    } else if (seen[i].topic.rfind("imp/impctl/", 0) != 0) {
      lastOther = i;
    }
  }
  CHECK(seen.size() >= distinct.size() + 1 + 5 + 1);
  CHECK(lastOther < deployAt);

  // The registry has the version and the deployment.
  auto list = f.json({"code", "list", "--json"});
  REQUIRE(list.size() == 1);
  CHECK(list[0]["code"] == sha);
  CHECK(list[0]["size"] == 65536);
  CHECK(list[0]["note"] == "first");
  CHECK(list[0]["groups"] == nlohmann::json::array({"kitchen"}));
  auto history = f.json({"code", "history", "--group", "kitchen", "--json"});
  REQUIRE(history.size() == 1);
  CHECK(history[0]["deployment"] == 1);
  CHECK(history[0]["stages"] == nlohmann::json::array({10, 100}));
  CHECK(history[0]["halt_failures"] == 5.0);
  CHECK(history[0]["max_concurrent"] == 2);
  CHECK(history[0]["paused"] == false);
  CHECK(history[0]["min_supported"] == false);

  // A second version with --min-supported: supported narrows to it.
  const std::vector<uint8_t> v2 = randomBytes(3000, 2);
  REQUIRE(f.bus({"code", "deploy", f.file("v2.bin", v2).string(), "--group", "kitchen",
                 "--min-supported"})
              .rc == 0);
  fleet::DeploymentBody d2 = f.deployment("kitchen");
  CHECK(d2.deployment == 2);
  CHECK(d2.code == shaHex(v2));
  CHECK(d2.supported == std::vector<std::string>{shaHex(v2)});
  CHECK(d2.stages == std::vector<uint32_t>{100});
  CHECK(d2.haltFailures == 100.0);
  auto groups = f.json({"group", "list", "--json"});
  bool found = false;
  for (const auto& g : groups) {
    if (g["name"] == "kitchen") {
      found = true;
      CHECK(g["deployment"] == 2);
      CHECK(g["code"] == shaHex(v2));
      CHECK(g["min_supported"] == 2);
      CHECK(g["devices"] == 5);
      CHECK(g["active_devices"] == 5);
    }
  }
  CHECK(found);

  // Rollback: a new deployment (3) of v1; then nothing before the first.
  Ran back = f.bus({"code", "rollback", "--group", "kitchen"});
  REQUIRE(back.rc == 0);
  CHECK(contains(back.out, "rollback to deployment 1"));
  fleet::DeploymentBody d3 = f.deployment("kitchen");
  CHECK(d3.deployment == 3);
  CHECK(d3.code == sha);
  // min_supported stays at 2: v1 (running it is no longer allowed) is the target again.
  CHECK(d3.supported == std::vector<std::string>{shaHex(v2), sha});
  Ran past = f.bus({"code", "rollback", "--group", "kitchen", "--to", "0"});
  CHECK(past.rc == 1);
  CHECK(contains(past.err, "impctl: error: a rollback past the first deployment"));
  CHECK(f.deploymentNumbers("kitchen") == std::vector<std::int64_t>{1, 2, 3});
}

TEST_CASE("code deploy refuses bad input clearly and records nothing") {
  Fleet f;
  const auto v1 = f.file("v1.bin", randomBytes(5000, 3));

  Ran empty = f.bus({"code", "deploy", f.file("empty.bin", {}).string(), "--group", "kitchen"});
  CHECK(empty.rc == 1);
  CHECK(contains(empty.err, "impctl: error: "));
  CHECK(contains(empty.err, "empty.bin is empty"));

  Ran big =
      f.bus({"code", "deploy", f.file("big.bin", std::vector<uint8_t>((4 << 20) + 1, 7)).string(),
             "--group", "kitchen"});
  CHECK(big.rc == 1);
  CHECK(contains(big.err, "is 4194305 bytes; a code version is at most 4 MiB"));

  Ran missing = f.bus({"code", "deploy", (f.dir / "nope.bin").string(), "--group", "kitchen"});
  CHECK(missing.rc == 1);
  CHECK(contains(missing.err, "cannot read"));

  Ran group = f.bus({"code", "deploy", v1.string(), "--group", "attic"});
  CHECK(group.rc == 1);
  CHECK(contains(group.err,
                 "group 'attic' does not exist; create it with `impctl group create attic`"));

  Ran stage = f.bus({"code", "deploy", v1.string(), "--group", "kitchen", "--stage", "10%,50%"});
  CHECK(stage.rc == 2);
  CHECK(contains(stage.err, "the last stage must be 100"));
  Ran stageText = f.bus({"code", "deploy", v1.string(), "--group", "kitchen", "--stage", "ten"});
  CHECK(stageText.rc == 2);
  CHECK(contains(stageText.err, "--stage 'ten' is not a list of percentages"));
  Ran halt = f.bus({"code", "deploy", v1.string(), "--group", "kitchen", "--halt-failures", "120"});
  CHECK(halt.rc == 2);

  // Content that cuts near the 512-byte minimum everywhere: more than 4096 chunks in 4 MiB.
  // Find a block whose first cut falls below 1 KiB; repeated, every chunk is that block.
  std::vector<uint8_t> block;
  for (uint32_t seed = 100; seed < 100000 && block.empty(); ++seed) {
    std::vector<uint8_t> candidate = randomBytes(impgate::code::kMaxChunk, seed);
    std::size_t cut = impgate::code::firstChunkLength(candidate);
    if (cut < 1024) block.assign(candidate.begin(), candidate.begin() + cut);
  }
  REQUIRE_FALSE(block.empty());
  std::vector<uint8_t> choppy;
  while (choppy.size() + block.size() <= (4u << 20))
    choppy.insert(choppy.end(), block.begin(), block.end());
  REQUIRE(impgate::code::buildManifest(choppy).chunks.size() > 4096);
  Ran chunks =
      f.bus({"code", "deploy", f.file("choppy.bin", choppy).string(), "--group", "kitchen"});
  CHECK(chunks.rc == 1);
  CHECK(contains(chunks.err, "chunks; code push allows at most 4096"));

  Ran rollback = f.bus({"code", "rollback", "--group", "kitchen"});
  CHECK(rollback.rc == 1);
  CHECK(contains(rollback.err, "nothing to roll back"));

  // The broker is unreachable: refused before the registry is written.
  std::string nowhere = "tcp://127.0.0.1:" + std::to_string(freeLoopbackPort());
  Ran unreachable =
      f.run({"code", "deploy", v1.string(), "--group", "kitchen", "--broker", nowhere});
  CHECK(unreachable.rc == 1);
  CHECK(contains(unreachable.err, "cannot connect to the broker at " + nowhere));
  CHECK(contains(unreachable.err, "nothing was deployed"));

  // None of it left anything behind.
  CHECK(f.json({"code", "list", "--json"}).empty());
  CHECK(f.deploymentNumbers("kitchen").empty());
  CHECK(f.retained("imp/#").empty());
}

TEST_CASE("the signing key: missing, kept outside the home, replaced") {
  Fleet f;
  const auto v1 = f.file("v1.bin", randomBytes(4000, 4));
  const std::filesystem::path outside = f.dir / "offline" / "signing.key";
  std::filesystem::create_directories(outside.parent_path());
  std::filesystem::rename(f.home / "ca" / "code-signing.key", outside);

  Ran missing = f.bus({"code", "deploy", v1.string(), "--group", "kitchen"});
  CHECK(missing.rc == 1);
  CHECK(contains(missing.err,
                 "no code-signing key at " + (f.home / "ca" / "code-signing.key").string()));
  CHECK(contains(missing.err, "--signing-key FILE"));
  Ran wrong = f.bus({"code", "deploy", v1.string(), "--group", "kitchen", "--signing-key",
                     (f.home / "ca" / "ca.key").string()});
  CHECK(wrong.rc == 1);
  CHECK(contains(wrong.err, "must be Ed25519"));
  CHECK(f.deploymentNumbers("kitchen").empty());

  Ran ok = f.bus(
      {"code", "deploy", v1.string(), "--group", "kitchen", "--signing-key", outside.string()});
  REQUIRE(ok.rc == 0);
  CHECK(f.deployment("kitchen").deployment == 1);  // verifies with the home's .pub

  // Another key (the fleet key replaced): the stored version's signature is not its own.
  auto other = impgate::pki::generateSigningKey();
  REQUIRE(other.ok());
  const std::filesystem::path otherPath = f.dir / "offline" / "other.key";
  REQUIRE(impgate::pki::writeSigningKey(otherPath, other->get(), impgate::pki::Replace::kNo).ok());
  Ran rotated = f.bus(
      {"code", "deploy", v1.string(), "--group", "kitchen", "--signing-key", otherPath.string()});
  CHECK(rotated.rc == 1);
  CHECK(contains(rotated.err, "is stored with a signature of another code-signing key"));
  CHECK(f.deploymentNumbers("kitchen") == std::vector<std::int64_t>{1});

  // device move signs with --signing-key too.
  Ran move =
      f.bus({"device", "move", "k-00001", "--group", "kitchen", "--signing-key", outside.string()});
  CHECK(move.rc == 0);
}

TEST_CASE("a publish the broker refuses after the registry write says so; code publish redoes it") {
  Fleet f;
  // A broker that lets impctl connect (and use its marker topic) but refuses every code-push
  // topic: the registry is written, the publish fails.
  const auto acl = f.dir / "acl";
  {
    std::ofstream out(acl);
    out << "topic readwrite imp/impctl/#\n";
  }
  MosquittoFixture strict(impgate::testbed::withConfig({"acl_file " + acl.string()}));
  const auto v1 = f.file("v1.bin", randomBytes(6000, 5));
  Ran refused =
      f.run({"code", "deploy", v1.string(), "--group", "kitchen", "--broker", strict.uri()});
  CHECK(refused.rc == 1);
  CHECK(contains(refused.err,
                 "deployment 1 of group 'kitchen' is recorded in the registry, but "
                 "publishing it failed: the broker at " +
                     strict.uri() + " refused"));
  CHECK(contains(refused.err, "run `impctl code publish --group kitchen`"));
  CHECK(f.deploymentNumbers("kitchen") == std::vector<std::int64_t>{1});

  Ran published = f.bus({"code", "publish", "--group", "kitchen"});
  REQUIRE(published.rc == 0);
  CHECK(contains(published.out, "deployment 1 of group kitchen"));
  fleet::DeploymentBody d = f.deployment("kitchen");
  CHECK(d.deployment == 1);
  CHECK(d.code == shaHex(randomBytes(6000, 5)));
  CHECK(f.retained(f.topics.allDeviceGroups()).size() == 5);
  CHECK(f.retained(f.topics.allCodeVersions()).size() == 1);
}

TEST_CASE("code pause and resume change the registry and republish the deployment") {
  Fleet f;
  REQUIRE(f.bus({"code", "deploy", f.file("v1.bin", randomBytes(2000, 6)).string(), "--group",
                 "kitchen", "--stage", "20,100"})
              .rc == 0);
  // A device enrolled later does not move the stage targets of a republished body.
  REQUIRE(f.run({"device", "enroll", "late", "--group", "kitchen"}).rc == 0);

  Ran pause = f.bus({"code", "pause", "--group", "kitchen"});
  REQUIRE(pause.rc == 0);
  CHECK(contains(pause.out, "paused deployment 1 of group kitchen"));
  fleet::DeploymentBody paused = f.deployment("kitchen");
  CHECK(paused.deployment == 1);
  CHECK(paused.paused);
  CHECK(paused.resume == 0);
  CHECK(paused.devices == 5);
  CHECK(paused.stages == std::vector<uint32_t>{20, 100});
  auto history = f.json({"code", "history", "--group", "kitchen", "--json"});
  CHECK(history[0]["paused"] == true);

  Ran resume = f.bus({"code", "resume", "--group", "kitchen"});
  REQUIRE(resume.rc == 0);
  CHECK(contains(resume.out, "resumed deployment 1 of group kitchen (resume 1, was paused)"));
  fleet::DeploymentBody resumed = f.deployment("kitchen");
  CHECK_FALSE(resumed.paused);
  CHECK(resumed.resume == 1);
  CHECK(resumed.devices == 5);
  REQUIRE(f.bus({"code", "resume", "--group", "kitchen"}).rc == 0);
  CHECK(f.deployment("kitchen").resume == 2);
  history = f.json({"code", "history", "--group", "kitchen", "--json"});
  CHECK(history[0]["paused"] == false);
  CHECK(history[0]["resume"] == 2);

  REQUIRE(f.run({"group", "create", "empty"}).rc == 0);
  Ran none = f.bus({"code", "pause", "--group", "empty"});
  CHECK(none.rc == 1);
  CHECK(contains(none.err, "group 'empty' has no deployment yet"));
}

TEST_CASE("group create and list; device move publishes the signed assignment") {
  Fleet f;
  Ran created = f.run({"group", "create", "cellar"});
  REQUIRE(created.rc == 0);
  CHECK(contains(created.out, "created group cellar"));
  Ran again = f.run({"group", "create", "cellar"});
  CHECK(again.rc == 1);
  CHECK(contains(again.err, "group 'cellar' already exists"));
  Ran bad = f.run({"group", "create", "a/b"});
  CHECK(bad.rc == 1);
  CHECK(contains(bad.err, "invalid group name"));

  Ran moved = f.bus({"device", "move", "k-00002", "--group", "cellar"});
  REQUIRE(moved.rc == 0);
  CHECK(contains(moved.out, "moved k-00002 from group kitchen to cellar"));
  auto assignments = f.retained(f.topics.deviceGroup("k-00002"));
  REQUIRE(assignments.size() == 1);
  auto a = fleet::openGroupAssignment(assignments.begin()->second, f.verifier());
  REQUIRE(a.ok());
  CHECK(a->device == "k-00002");
  CHECK(a->group == "cellar");

  auto groups = f.json({"group", "list", "--json"});
  std::map<std::string, nlohmann::json> byName;
  for (const auto& g : groups) byName[g["name"].get<std::string>()] = g;
  REQUIRE(byName.count("cellar") == 1);
  CHECK(byName["cellar"]["devices"] == 1);
  CHECK(byName["cellar"]["deployment"].is_null());
  CHECK(byName["kitchen"]["devices"] == 4);
  Ran table = f.run({"group", "list"});
  CHECK(contains(table.out, "GROUP"));
  CHECK(contains(table.out, "cellar"));

  Ran unknownDevice = f.bus({"device", "move", "ghost", "--group", "cellar"});
  CHECK(unknownDevice.rc == 1);
  CHECK(contains(unknownDevice.err, "device 'ghost' is not enrolled"));
  Ran unknownGroup = f.bus({"device", "move", "k-00001", "--group", "attic"});
  CHECK(unknownGroup.rc == 1);
  CHECK(contains(unknownGroup.err, "group 'attic' does not exist"));
  CHECK(f.retained(f.topics.allDeviceGroups()).size() == 1);
}

TEST_CASE("two deploys to one group at once get distinct numbers") {
  Fleet f;
  const auto a = f.file("a.bin", randomBytes(3000, 7));
  const auto b = f.file("b.bin", randomBytes(3000, 8));
  auto args = [&](const std::filesystem::path& file) {
    return std::vector<std::string>{"--home",  f.home.string(), "code",
                                    "deploy",  file.string(),   "--group",
                                    "kitchen", "--broker",      f.broker.uri()};
  };
  Impctl first(f.dir.path(), args(a));
  Impctl second(f.dir.path(), args(b));
  Ran one = first.wait();
  Ran two = second.wait();
  INFO(one.out << one.err << two.out << two.err);
  std::vector<std::int64_t> numbers = f.deploymentNumbers("kitchen");
  // Both succeed with numbers 1 and 2, or one is refused cleanly and recorded nothing.
  if (one.rc == 0 && two.rc == 0) {
    CHECK(numbers == std::vector<std::int64_t>{1, 2});
    CHECK(contains(one.out + two.out, "deployment 1 of group kitchen"));
    CHECK(contains(one.out + two.out, "deployment 2 of group kitchen"));
  } else {
    CHECK(one.rc + two.rc == 1);
    CHECK(contains(one.err + two.err, "impctl: error: "));
    CHECK(numbers == std::vector<std::int64_t>{1});
  }
}

TEST_CASE("code status counts the device states, records them, and --until-done waits for done") {
  Fleet f;
  const std::vector<uint8_t> v1 = randomBytes(4000, 9);
  const std::string target = shaHex(v1);
  REQUIRE(f.bus({"code", "deploy", f.file("v1.bin", v1).string(), "--group", "kitchen", "--stage",
                 "50%,100%", "--halt-failures", "30"})
              .rc == 0);
  const std::string old(64, 'a');  // what the devices ran before: a hash nobody deployed
  MqttProbe node(f.broker.uri());  // plays the gateway node gw-a
  REQUIRE(node.connect());
  auto state = [&](const std::string& device, const char* s, const std::string& reason = "",
                   const std::string& group = "kitchen") {
    fleet::DeviceCodeState st;
    st.device = device;
    st.group = group;
    st.deployment = 1;
    st.target = target;
    st.running = old;
    REQUIRE(fleet::codeStateFromName(s, st.state));
    st.reason = reason;
    st.node = "gw-a";
    st.atMs = 1764547200000;
    REQUIRE(node.publish(f.topics.deviceCode(device), fleet::encodeDeviceCodeState(st), 1, true));
  };
  auto presence = [&](const std::string& device, bool online, const std::string& code) {
    nlohmann::json p = {
        {"status", online ? "online" : "offline"}, {"node", "gw-a"}, {"since", 1}, {"epoch", 1}};
    if (online) p["code"] = code;
    REQUIRE(node.publish(f.topics.deviceState(device), p.dump(), 1, true));
  };
  // k-00001 installed, k-00002 transferring, k-00003 failed, k-00004 current, k-00005 nothing
  // yet; a device the registry does not know reports too.
  state("k-00001", "installed");
  presence("k-00001", true, target);
  state("k-00002", "transferring");
  presence("k-00002", true, old);
  state("k-00003", "failed", "corrupt chunk");
  presence("k-00003", true, old);
  state("k-00004", "current");
  presence("k-00004", true, target);
  presence("k-00005", false, "");
  state("stranger", "installed");
  fleet::NodeRolloutView view{"gw-a", "kitchen", 1, 0, false, false, 1, 0, 1764547200000};
  REQUIRE(node.publish(f.topics.groupRollout("kitchen", "gw-a"), fleet::encodeNodeRolloutView(view),
                       1, true));

  nlohmann::json s = f.json({"code", "status", "--group", "kitchen", "--json"}, true);
  CHECK(s["group"] == "kitchen");
  CHECK(s["deployment"]["number"] == 1);
  CHECK(s["deployment"]["code"] == target);
  CHECK(s["devices"] == 5);
  CHECK(s["online"] == 4);
  CHECK(s["states"] == nlohmann::json({{"pending", 1},
                                       {"offered", 0},
                                       {"transferring", 1},
                                       {"installed", 1},
                                       {"current", 1},
                                       {"deferred", 0},
                                       {"failed", 1}}));
  CHECK(s["unknown_devices"] == 1);
  CHECK(s["recorded"] == 4);
  REQUIRE(s["failures"].size() == 1);
  CHECK(s["failures"][0]["device"] == "k-00003");
  CHECK(s["failures"][0]["reason"] == "corrupt chunk");
  std::map<std::string, nlohmann::json> running;
  for (const auto& r : s["running"]) running[r["version"].get<std::string>()] = r;
  CHECK(running["target"]["devices"] == 2);
  CHECK(running["target"]["code"] == target);
  CHECK(running["unknown"]["devices"] == 2);
  CHECK(running["unknown"]["code"] == old);
  CHECK(running["none"]["devices"] == 1);
  REQUIRE(s["nodes"].size() == 1);
  CHECK(s["nodes"][0]["node"] == "gw-a");
  CHECK(s["halted_by"].empty());
  CHECK(s["done"] == false);

  // The states are in the push history; reading them again adds nothing.
  {
    auto db = impgate::storage::Database::open(f.home / "impgate.db");
    REQUIRE(db.ok());
    auto registry = impgate::storage::CodeRegistry::open(*db);
    REQUIRE(registry.ok());
    auto h3 = registry->pushHistory("k-00003");
    REQUIRE(h3.ok());
    REQUIRE(h3->size() == 1);
    CHECK((*h3)[0].state == "failed");
    CHECK((*h3)[0].reason == "corrupt chunk");
    CHECK((*h3)[0].node == "gw-a");
    CHECK((*h3)[0].codeSha == target);
    auto latest = registry->latestPushStates("kitchen");
    REQUIRE(latest.ok());
    CHECK(latest->size() == 4);
  }
  CHECK(f.json({"code", "status", "--group", "kitchen", "--json"}, true)["recorded"] == 0);

  // The text form says the same.
  Ran text = f.bus({"code", "status", "--group", "kitchen"});
  REQUIRE(text.rc == 0);
  CHECK(contains(text.out, "deployment 1 of " + target));
  CHECK(contains(text.out,
                 "pending 1 offered 0 transferring 1 installed 1 current 1 deferred 0 failed 1"));
  CHECK(contains(text.out, "k-00003: corrupt chunk"));
  CHECK(contains(text.out, "unknown version"));
  CHECK(contains(text.out, "unknown devices: 1"));

  // Not done (a transfer runs, an online device runs old code): --until-done gives up.
  auto started = std::chrono::steady_clock::now();
  Ran notDone = f.bus({"code", "status", "--group", "kitchen", "--until-done", "2"});
  CHECK(notDone.rc == 1);
  CHECK(contains(notDone.err, "is not done after 2 s"));
  CHECK(std::chrono::steady_clock::now() - started < 15s);

  // A halted node shows.
  view.halted = true;
  REQUIRE(node.publish(f.topics.groupRollout("kitchen", "gw-a"), fleet::encodeNodeRolloutView(view),
                       1, true));
  CHECK(f.json({"code", "status", "--group", "kitchen", "--json"}, true)["halted_by"] ==
        nlohmann::json::array({"gw-a"}));

  // Waiting while the rollout finishes: k-00002 installs, k-00003 goes offline.
  Impctl waiting(f.dir.path(), {"--home", f.home.string(), "code", "status", "--group", "kitchen",
                                "--until-done", "60", "--json", "--broker", f.broker.uri()});
  state("k-00002", "installed");
  presence("k-00002", true, target);
  presence("k-00003", false, "");
  Ran done = waiting.wait(90s);
  INFO(done.err);
  CHECK(done.rc == 0);
  nlohmann::json finalState = nlohmann::json::parse(done.out, nullptr, false);
  REQUIRE_FALSE(finalState.is_discarded());
  CHECK(finalState["done"] == true);
  CHECK(finalState["states"]["installed"] == 2);
  CHECK(finalState["states"]["transferring"] == 0);
}
