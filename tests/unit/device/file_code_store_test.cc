// FileCodeStore: the device's code in its state directory survives reopening (a restart), a
// partial download survives, and an install stopped before its rename (a crash) leaves the old
// code running. Real files in a temp directory.
#include "gateway/device/file_code_store.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <random>

#include "gateway/base/code/hex.h"
#include "tests/support/testbed.h"

using namespace impgate;
using impgate::testing::TempDir;

namespace {

std::vector<uint8_t> bytesOf(std::size_t size, uint32_t seed) {
  std::minstd_rand rng(seed);
  std::vector<uint8_t> out(size);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

std::unique_ptr<device::FileCodeStore> openStore(const TempDir& dir) {
  auto store = device::FileCodeStore::open(dir.path() / "state");
  INFO((store ? std::string() : store.error().message));
  REQUIRE(store);
  return std::move(*store);
}

// Downloads `code` into `store`'s partial in one piece and marks it held.
void download(device::FileCodeStore& store, const std::vector<uint8_t>& code) {
  code::Sha256 sha = code::sha256(code);
  auto held = store.openPartial(sha, static_cast<uint32_t>(code.size()));
  REQUIRE(held);
  REQUIRE(store.writePartial(sha, 0, code));
  REQUIRE(store.markHeld(sha, {0, static_cast<uint32_t>(code.size())}));
}

std::vector<uint8_t> readRunning(device::FileCodeStore& store) {
  std::vector<uint8_t> out(store.runningSize());
  REQUIRE(store.readRunning(0, out));
  return out;
}

}  // namespace

TEST_CASE("file code store: an installed code is the running code after a reopen") {
  TempDir dir;
  auto store = openStore(dir);
  CHECK_FALSE(store->runningCode());
  CHECK(store->runningManifest().chunks.empty());
  auto v1 = bytesOf(30000, 1);
  code::Sha256 sha = code::sha256(v1);
  download(*store, v1);
  code::Manifest manifest = code::buildManifest(v1);
  REQUIRE(store->install(sha, manifest));
  CHECK(store->runningCode() == sha);
  CHECK(readRunning(*store) == v1);

  store = openStore(dir);
  CHECK(store->runningCode() == sha);
  CHECK(store->runningSize() == v1.size());
  CHECK(store->runningManifest() == manifest);
  CHECK(readRunning(*store) == v1);
  // The partial was consumed.
  for (const auto& e : std::filesystem::directory_iterator(store->codeDir())) {
    CHECK_FALSE(e.path().filename().string().starts_with("partial-"));
  }
}

TEST_CASE("file code store: a partial download and its held ranges survive a reopen") {
  TempDir dir;
  auto v1 = bytesOf(20000, 2);
  code::Sha256 sha = code::sha256(v1);
  {
    auto store = openStore(dir);
    auto held = store->openPartial(sha, 20000);
    REQUIRE(held);
    CHECK(held->empty());
    REQUIRE(store->writePartial(sha, 4000, std::span(v1).subspan(4000, 3000)));
    REQUIRE(store->markHeld(sha, {4000, 3000}));
    REQUIRE(store->writePartial(sha, 9000, std::span(v1).subspan(9000, 1000)));  // not marked
  }
  auto store = openStore(dir);
  auto held = store->openPartial(sha, 20000);
  REQUIRE(held);
  REQUIRE(held->size() == 1);
  CHECK(held->front() == device::CodeRange{4000, 3000});
  std::vector<uint8_t> back(3000);
  REQUIRE(store->readPartial(sha, 4000, back));
  CHECK(std::equal(back.begin(), back.end(), v1.begin() + 4000));

  // Another code's partial replaces it.
  auto v2 = bytesOf(5000, 3);
  auto other = store->openPartial(code::sha256(v2), 5000);
  REQUIRE(other);
  CHECK(other->empty());
  auto again = store->openPartial(sha, 20000);
  REQUIRE(again);
  CHECK(again->empty());
}

TEST_CASE("file code store: an install stopped before its rename leaves the old code running") {
  TempDir dir;
  auto v1 = bytesOf(10000, 4);
  auto v2 = bytesOf(12000, 5);
  {
    auto store = openStore(dir);
    download(*store, v1);
    REQUIRE(store->install(code::sha256(v1), code::buildManifest(v1)));
    download(*store, v2);
    store->faultHook = [](std::string_view step) { return step != "before-rename"; };
    CHECK_FALSE(store->install(code::sha256(v2), code::buildManifest(v2)));
  }  // "crash": the process is gone with v2 written aside
  auto store = openStore(dir);
  CHECK(store->runningCode() == code::sha256(v1));
  CHECK(readRunning(*store) == v1);
  CHECK(store->runningManifest() == code::buildManifest(v1));
  CHECK_FALSE(std::filesystem::exists(store->codeDir() / "current.manifest.tmp"));
  // v2's download is still there, complete, for the next offer.
  auto held = store->openPartial(code::sha256(v2), 12000);
  REQUIRE(held);
  CHECK(held->size() == 1);
}

TEST_CASE("file code store: a manifest that does not match the running code is rebuilt") {
  TempDir dir;
  auto v1 = bytesOf(15000, 6);
  {
    auto store = openStore(dir);
    download(*store, v1);
    REQUIRE(store->install(code::sha256(v1), code::buildManifest(v1)));
  }
  // A crash between the two renames of an install leaves the old code's manifest; damage
  // does the same.
  std::ofstream(dir.path() / "state" / "code" / "current.manifest") << "garbage\n";
  auto store = openStore(dir);
  CHECK(store->runningCode() == code::sha256(v1));
  CHECK(store->runningManifest() == code::buildManifest(v1));
}
