#include "gateway/base/pki/credential_files.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "tests/support/testbed.h"

using namespace impgate::pki;
using impgate::testing::TempDir;

namespace {

mode_t modeOf(const std::filesystem::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::size_t entriesIn(const std::filesystem::path& dir) {
  return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(dir), {}));
}

}  // namespace

TEST_CASE("files are written with the requested mode and no temporary file is left") {
  TempDir dir;
  const auto path = dir.path() / "secret";
  REQUIRE(writeFileAtomically(path, "one", 0600, Replace::kNo).ok());
  CHECK(*readWholeFile(path) == "one");
  CHECK(modeOf(path) == 0600);
  CHECK(entriesIn(dir.path()) == 1);
}

TEST_CASE("Replace::kNo refuses an existing file and leaves it alone") {
  TempDir dir;
  const auto path = dir.path() / "secret";
  REQUIRE(writeFileAtomically(path, "one", 0600, Replace::kNo).ok());
  Status again = writeFileAtomically(path, "two", 0600, Replace::kNo);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == ErrorCode::kAlreadyExists);
  CHECK(*readWholeFile(path) == "one");
  CHECK(entriesIn(dir.path()) == 1);

  REQUIRE(writeFileAtomically(path, "three", 0644, Replace::kYes).ok());
  CHECK(*readWholeFile(path) == "three");
  CHECK(modeOf(path) == 0644);
  CHECK(entriesIn(dir.path()) == 1);
}

TEST_CASE("reading a missing file is kNotFound") {
  TempDir dir;
  Result<std::string> r = readWholeFile(dir.path() / "missing");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kNotFound);
}

TEST_CASE("private directories are 0700, existing ones are accepted, files are not") {
  TempDir dir;
  const auto nested = dir.path() / "a" / "b";
  REQUIRE(makePrivateDirectory(nested).ok());
  CHECK(modeOf(nested) == 0700);
  CHECK(makePrivateDirectory(nested).ok());

  std::ofstream(dir.path() / "file") << "x";
  Status s = makePrivateDirectory(dir.path() / "file");
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.error().message, Catch::Contains("not a directory"));
}
