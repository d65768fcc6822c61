#include "gateway/base/pki/code_signing.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "gateway/base/home.h"
#include "gateway/base/pki/key_pair.h"
#include "gateway/base/pki/pem_files.h"
#include "tests/support/testbed.h"

using namespace impgate::pki;
using impgate::testing::TempDir;

namespace {

using Sha = std::array<uint8_t, 32>;

Sha shaOf(uint8_t fill) {
  Sha s;
  s.fill(fill);
  return s;
}

PkeyPtr freshKey() {
  Result<PkeyPtr> key = generateSigningKey();
  REQUIRE(key.ok());
  return std::move(key).value();
}

mode_t modeOf(const std::filesystem::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

void writeText(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

template <size_t N>
std::array<uint8_t, N> fromHex(const std::string& hex) {
  REQUIRE(hex.size() == 2 * N);
  std::array<uint8_t, N> out{};
  for (size_t i = 0; i < N; ++i)
    out[i] = static_cast<uint8_t>(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
  return out;
}

}  // namespace

TEST_CASE("code signatures verify, and any flipped bit or another key fails them") {
  PkeyPtr key = freshKey();
  const Sha sha = shaOf(0x42);
  Ed25519Signature sig = signCode(key.get(), sha, 65536);
  CHECK(verifyCode(key.get(), sha, 65536, sig));
  CHECK(signCode(key.get(), sha, 65536) == sig);  // Ed25519 is deterministic

  for (size_t bit = 0; bit < 8 * sha.size(); bit += 37) {
    Sha flipped = sha;
    flipped[bit / 8] ^= static_cast<uint8_t>(1 << (bit % 8));
    CHECK_FALSE(verifyCode(key.get(), flipped, 65536, sig));
  }
  for (int bit = 0; bit < 32; ++bit) {
    CHECK_FALSE(verifyCode(key.get(), sha, 65536 ^ (1u << bit), sig));
  }
  for (size_t bit = 0; bit < 8 * sig.size(); bit += 13) {
    Ed25519Signature flipped = sig;
    flipped[bit / 8] ^= static_cast<uint8_t>(1 << (bit % 8));
    CHECK_FALSE(verifyCode(key.get(), sha, 65536, flipped));
  }
  CHECK_FALSE(verifyCode(key.get(), sha, 65536, std::span<const uint8_t>(sig).first(63)));
  CHECK_FALSE(verifyCode(key.get(), sha, 65536, {}));

  PkeyPtr other = freshKey();
  CHECK_FALSE(verifyCode(other.get(), sha, 65536, sig));
  // A P-256 key is not a code-signing key, whatever the bytes.
  Result<PkeyPtr> ec = generateKeyPair();
  REQUIRE(ec.ok());
  CHECK_FALSE(verifyCode(ec->get(), sha, 65536, sig));
}

TEST_CASE("descriptor signatures cover the whole body and are not code signatures") {
  PkeyPtr key = freshKey();
  const std::string body = R"({"group":"kitchen","deployment":3})";
  Ed25519Signature sig = signDescriptor(key.get(), body);
  CHECK(verifyDescriptor(key.get(), body, sig));
  std::string changed = body;
  changed[10] ^= 1;
  CHECK_FALSE(verifyDescriptor(key.get(), changed, sig));
  CHECK_FALSE(verifyDescriptor(key.get(), body + " ", sig));
  CHECK_FALSE(verifyDescriptor(key.get(), body.substr(1), sig));
  Ed25519Signature flipped = sig;
  flipped[63] ^= 0x80;
  CHECK_FALSE(verifyDescriptor(key.get(), body, flipped));
  // The prefixes keep one kind of signature from passing as the other.
  std::string asDescriptor(36, '\0');
  CHECK_FALSE(verifyDescriptor(key.get(), asDescriptor, signCode(key.get(), shaOf(0), 0)));
}

TEST_CASE("signing keys round-trip through PEM files; the private key is 0600") {
  TempDir dir;
  impgate::Home home(dir.path());
  std::filesystem::create_directories(dir.path() / "ca");
  PkeyPtr key = freshKey();
  REQUIRE(writeSigningKey(home.codeSigningKey(), key.get(), Replace::kNo).ok());
  REQUIRE(writeVerifyKey(home.codeVerifyKey(), key.get(), Replace::kNo).ok());
  CHECK(modeOf(home.codeSigningKey()) == 0600);
  CHECK(modeOf(home.codeVerifyKey()) == 0644);
  CHECK(home.codeSigningKey() == dir.path() / "ca" / "code-signing.key");
  CHECK(home.codeVerifyKey() == dir.path() / "ca" / "code-signing.pub");
  CHECK(home.deviceCodeVerifyKey("imp-1") == dir.path() / "devices" / "imp-1" / "code-signing.pub");

  Status again = writeSigningKey(home.codeSigningKey(), key.get(), Replace::kNo);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == ErrorCode::kAlreadyExists);

  Result<PkeyPtr> priv = readSigningKey(home.codeSigningKey());
  Result<PkeyPtr> pub = readVerifyKey(home.codeVerifyKey());
  REQUIRE(priv.ok());
  REQUIRE(pub.ok());
  const Sha sha = shaOf(7);
  Ed25519Signature sig = signCode(priv->get(), sha, 100);
  CHECK(sig == signCode(key.get(), sha, 100));
  CHECK(verifyCode(pub->get(), sha, 100, sig));
  // The public file holds no private key.
  CHECK_FALSE(readSigningKey(home.codeVerifyKey()).ok());
}

TEST_CASE("a key file that is not an Ed25519 key is a clear error") {
  TempDir dir;
  Result<PkeyPtr> ec = generateKeyPair();
  REQUIRE(ec.ok());
  const auto ecPath = dir.path() / "p256.key";
  REQUIRE(writePrivateKeyFile(ecPath, ec->get(), Replace::kNo).ok());
  Result<PkeyPtr> wrong = readSigningKey(ecPath);
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().code == ErrorCode::kInvalidArgument);
  CHECK_THAT(wrong.error().message, Catch::Contains("p256.key") && Catch::Contains("Ed25519"));

  writeText(dir.path() / "junk.pub", "not a key\n");
  Result<PkeyPtr> junk = readVerifyKey(dir.path() / "junk.pub");
  REQUIRE_FALSE(junk.ok());
  CHECK(junk.error().code == ErrorCode::kInvalidArgument);
  CHECK_THAT(junk.error().message, Catch::Contains("junk.pub"));

  Result<PkeyPtr> missing = readVerifyKey(dir.path() / "absent.pub");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == ErrorCode::kNotFound);
}

TEST_CASE("the CODE_OFFER test vector's signature verifies with RFC 8032's test 1 key") {
  TempDir dir;
  // RFC 8032 section 7.1, test 1: the public key d75a9801...07511a.
  writeText(dir.path() / "rfc8032.pub",
            "-----BEGIN PUBLIC KEY-----\n"
            "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
            "-----END PUBLIC KEY-----\n");
  writeText(dir.path() / "rfc8032.key",
            "-----BEGIN PRIVATE KEY-----\n"
            "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
            "-----END PRIVATE KEY-----\n");
  Result<PkeyPtr> pub = readVerifyKey(dir.path() / "rfc8032.pub");
  Result<PkeyPtr> priv = readSigningKey(dir.path() / "rfc8032.key");
  REQUIRE(pub.ok());
  REQUIRE(priv.ok());
  // docs/protocol.md: the 12-byte code "imp code v2\n".
  const Sha sha = fromHex<32>("7a7f133f603f895cc26b9979ca49ed65bdbd533cb2bcc7c06730a5b08400c850");
  const auto documented = fromHex<64>(
      "48c75f76cda78ade80c7d04551850ef74c907a602983565a19919ab827022a58"
      "8db941e7842e8086d76e62d69637d3caa36e15ffae70a9e115dcd32bb3c18402");
  CHECK(verifyCode(pub->get(), sha, 12, documented));
  CHECK(signCode(priv->get(), sha, 12) == documented);
}
