#include "gateway/base/pki/fleet_ca.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "gateway/base/pki/certificate_info.h"
#include "gateway/base/pki/code_signing.h"
#include "gateway/base/pki/credential_files.h"
#include "gateway/base/pki/device_identity.h"
#include "gateway/base/pki/pem_files.h"
#include "tests/support/testbed.h"

using namespace impgate::pki;
using impgate::Home;
using impgate::testing::TempDir;

namespace {

mode_t modeOf(const std::filesystem::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

X509Ptr readCert(const std::filesystem::path& p) {
  Result<X509Ptr> cert = readCertificateFile(p);
  REQUIRE(cert.ok());
  return std::move(cert).value();
}

// Verifies `leaf` against a store holding only the CA certificate in `caPath`, for `purpose`
// (X509_PURPOSE_SSL_SERVER / _CLIENT), which also checks the extended key usage.
bool verifies(const std::filesystem::path& caPath, X509* leaf, int purpose) {
  X509Ptr ca = readCert(caPath);
  std::unique_ptr<X509_STORE, OpensslDeleter<X509_STORE, X509_STORE_free>> store(X509_STORE_new());
  REQUIRE(X509_STORE_add_cert(store.get(), ca.get()) == 1);
  std::unique_ptr<X509_STORE_CTX, OpensslDeleter<X509_STORE_CTX, X509_STORE_CTX_free>> ctx(
      X509_STORE_CTX_new());
  REQUIRE(X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr) == 1);
  REQUIRE(X509_STORE_CTX_set_purpose(ctx.get(), purpose) == 1);
  int ok = X509_verify_cert(ctx.get());
  if (ok != 1) {
    UNSCOPED_INFO(X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())));
  }
  return ok == 1;
}

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr std::int64_t kDayMs = 86'400'000;

}  // namespace

TEST_CASE("init creates a CA and a gateway credential that chains to it") {
  TempDir dir;
  Home home(dir.path() / "home");
  Result<FleetCa> ca = FleetCa::init(home, {{"gw.example.com", "10.1.2.3"}, false});
  REQUIRE(ca.ok());
  CHECK_THAT(ca->name(), Catch::StartsWith("impgate fleet CA "));

  X509Ptr caCert = readCert(home.caCert());
  CHECK(X509_check_ca(caCert.get()) == 1);
  int bc = X509_get_ext_by_NID(caCert.get(), NID_basic_constraints, -1);
  REQUIRE(bc >= 0);
  CHECK(X509_EXTENSION_get_critical(X509_get_ext(caCert.get(), bc)) == 1);
  CHECK(X509_get_pathlen(caCert.get()) == 0);
  CHECK((X509_get_key_usage(caCert.get()) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) ==
        (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  auto caEnd = notAfterMs(caCert.get());
  REQUIRE(caEnd);
  CHECK(*caEnd > nowMs() + 3649 * kDayMs);
  CHECK(*caEnd < nowMs() + 3651 * kDayMs);

  X509Ptr gw = readCert(home.gatewayCert());
  CHECK(verifies(home.caCert(), gw.get(), X509_PURPOSE_SSL_SERVER));
  CHECK_FALSE(verifies(home.caCert(), gw.get(), X509_PURPOSE_SSL_CLIENT));
  CHECK(X509_check_host(gw.get(), "localhost", 0, 0, nullptr) == 1);
  CHECK(X509_check_host(gw.get(), "gw.example.com", 0, 0, nullptr) == 1);
  CHECK(X509_check_ip_asc(gw.get(), "127.0.0.1", 0) == 1);
  CHECK(X509_check_ip_asc(gw.get(), "::1", 0) == 1);
  CHECK(X509_check_ip_asc(gw.get(), "10.1.2.3", 0) == 1);
  CHECK(X509_check_host(gw.get(), "other.example.com", 0, 0, nullptr) != 1);
  auto gwEnd = notAfterMs(gw.get());
  REQUIRE(gwEnd);
  CHECK(*gwEnd > nowMs() + 729 * kDayMs);
  CHECK(*gwEnd < nowMs() + 731 * kDayMs);

  // The gateway's key matches its certificate.
  Result<PkeyPtr> gwKey = readPrivateKeyFile(home.gatewayKey());
  REQUIRE(gwKey.ok());
  CHECK(X509_check_private_key(gw.get(), gwKey->get()) == 1);
}

TEST_CASE("keys are 0600 and directories 0700") {
  TempDir dir;
  Home home(dir.path() / "home");
  Result<FleetCa> ca = FleetCa::init(home, {});
  REQUIRE(ca.ok());
  Result<IssuedDevice> dev = ca->issueDevice("imp-1");
  REQUIRE(dev.ok());

  CHECK(modeOf(home.caKey()) == 0600);
  CHECK(modeOf(home.gatewayKey()) == 0600);
  CHECK(modeOf(home.deviceKey("imp-1")) == 0600);
  CHECK(modeOf(home.caCert()) == 0644);
  CHECK(modeOf(home.deviceCert("imp-1")) == 0644);
  for (const auto& d : {home.root(), home.caKey().parent_path(), home.gatewayKey().parent_path(),
                        home.deviceDir("imp-1").parent_path(), home.deviceDir("imp-1")}) {
    CHECK(modeOf(d) == 0700);
  }
}

TEST_CASE("init refuses to replace an existing CA unless forced") {
  TempDir dir;
  Home home(dir.path());
  Result<FleetCa> first = FleetCa::init(home, {});
  REQUIRE(first.ok());

  Result<FleetCa> again = FleetCa::init(home, {});
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == ErrorCode::kAlreadyExists);
  CHECK_THAT(again.error().message, Catch::Contains("--force"));
  CHECK(commonName(readCert(home.caCert()).get()) == first->name());

  Result<FleetCa> forced = FleetCa::init(home, {{}, true});
  REQUIRE(forced.ok());
  CHECK(forced->name() != first->name());
  CHECK(commonName(readCert(home.caCert()).get()) == forced->name());
  CHECK(verifies(home.caCert(), readCert(home.gatewayCert()).get(), X509_PURPOSE_SSL_SERVER));
}

TEST_CASE("init with an invalid server name writes nothing") {
  TempDir dir;
  Home home(dir.path() / "home");
  for (const char* bad : {"bad name", "a,b", "-lead.example", "x..y", ""}) {
    Result<FleetCa> ca = FleetCa::init(home, {{bad}, false});
    REQUIRE_FALSE(ca.ok());
    CHECK(ca.error().code == ErrorCode::kInvalidArgument);
  }
  CHECK_FALSE(std::filesystem::exists(home.root()));
}

TEST_CASE("load finds the CA that init made, and explains a missing one") {
  TempDir dir;
  Home home(dir.path());
  Result<FleetCa> missing = FleetCa::load(home);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == ErrorCode::kNotFound);
  CHECK_THAT(missing.error().message, Catch::Contains("impctl ca init"));

  Result<FleetCa> made = FleetCa::init(home, {});
  REQUIRE(made.ok());
  Result<FleetCa> loaded = FleetCa::load(home);
  REQUIRE(loaded.ok());
  CHECK(loaded->name() == made->name());
}

TEST_CASE("load refuses a CA key that does not match the certificate") {
  TempDir dir;
  Home home(dir.path());
  Result<FleetCa> ca = FleetCa::init(home, {});
  REQUIRE(ca.ok());
  std::filesystem::copy_file(home.gatewayKey(), home.caKey(),
                             std::filesystem::copy_options::overwrite_existing);
  Result<FleetCa> loaded = FleetCa::load(home);
  REQUIRE_FALSE(loaded.ok());
  CHECK(loaded.error().code == ErrorCode::kCrypto);
  CHECK_THAT(loaded.error().message, Catch::Contains("does not match"));
}

TEST_CASE("issued device certificates chain to the CA and name the device") {
  TempDir dir;
  Home home(dir.path());
  Result<FleetCa> ca = FleetCa::init(home, {});
  REQUIRE(ca.ok());

  Result<IssuedDevice> dev = ca->issueDevice("imp-0001");
  REQUIRE(dev.ok());
  CHECK(dev->keyPath == home.deviceKey("imp-0001"));
  CHECK(dev->certPath == home.deviceCert("imp-0001"));

  X509Ptr cert = readCert(home.deviceCert("imp-0001"));
  CHECK(verifies(home.caCert(), cert.get(), X509_PURPOSE_SSL_CLIENT));
  CHECK_FALSE(verifies(home.caCert(), cert.get(), X509_PURPOSE_SSL_SERVER));
  CHECK(X509_check_ca(cert.get()) == 0);
  CHECK(X509_get_key_usage(cert.get()) == KU_DIGITAL_SIGNATURE);
  CHECK(deviceIdFromCertificate(cert.get()) == "imp-0001");
  CHECK(serialHex(cert.get()) == dev->serialHex);
  CHECK(dev->serialHex.size() >= 16);  // 127 random bits: short only with odds of 2^-64
  CHECK(notAfterMs(cert.get()) == dev->notAfterMs);

  Result<PkeyPtr> key = readPrivateKeyFile(home.deviceKey("imp-0001"));
  REQUIRE(key.ok());
  CHECK(X509_check_private_key(cert.get(), key->get()) == 1);
  CHECK(EVP_PKEY_is_a(key->get(), "EC"));

  // Every certificate gets its own serial.
  Result<IssuedDevice> other = ca->issueDevice("imp-0002");
  REQUIRE(other.ok());
  CHECK(other->serialHex != dev->serialHex);
}

TEST_CASE("device validity is as asked but never beyond the CA's") {
  TempDir dir;
  Home home(dir.path());
  Result<FleetCa> ca = FleetCa::init(home, {});
  REQUIRE(ca.ok());
  auto caEnd = notAfterMs(ca->certificate());
  REQUIRE(caEnd);

  Result<IssuedDevice> shortLived = ca->issueDevice("imp-1", {30, false});
  REQUIRE(shortLived.ok());
  CHECK(shortLived->notAfterMs > nowMs() + 29 * kDayMs);
  CHECK(shortLived->notAfterMs < nowMs() + 31 * kDayMs);

  Result<IssuedDevice> longLived = ca->issueDevice("imp-2", {20 * 365, false});
  REQUIRE(longLived.ok());
  CHECK(longLived->notAfterMs <= *caEnd);

  Result<IssuedDevice> none = ca->issueDevice("imp-3", {0, false});
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().code == ErrorCode::kInvalidArgument);
}

TEST_CASE("a validity in seconds issues a short-lived certificate (for expiry tests)") {
  TempDir dir;
  Home home(dir.path());
  Result<FleetCa> ca = FleetCa::init(home, {});
  REQUIRE(ca.ok());
  IssueOptions options;
  options.validity = std::chrono::seconds(5);
  auto before = nowMs();
  Result<IssuedDevice> dev = ca->issueDevice("imp-1", options);
  REQUIRE(dev.ok());
  // ASN.1 times have whole seconds.
  CHECK(dev->notAfterMs >= before + 4000);
  CHECK(dev->notAfterMs <= nowMs() + 5000);
}

TEST_CASE("issuing for an invalid id is refused and writes nothing") {
  TempDir dir;
  Home home(dir.path());
  Result<FleetCa> ca = FleetCa::init(home, {});
  REQUIRE(ca.ok());
  for (const char* bad : {"a/b", "..", ".", "", "a+b", "#"}) {
    Result<IssuedDevice> dev = ca->issueDevice(bad);
    REQUIRE_FALSE(dev.ok());
    CHECK(dev.error().code == ErrorCode::kInvalidArgument);
  }
  CHECK_FALSE(std::filesystem::exists(home.root() / "devices"));
}

TEST_CASE("issuing over existing credentials needs replace") {
  TempDir dir;
  Home home(dir.path());
  Result<FleetCa> ca = FleetCa::init(home, {});
  REQUIRE(ca.ok());
  Result<IssuedDevice> first = ca->issueDevice("imp-1");
  REQUIRE(first.ok());

  Result<IssuedDevice> again = ca->issueDevice("imp-1");
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == ErrorCode::kAlreadyExists);
  CHECK(serialHex(readCert(home.deviceCert("imp-1")).get()) == first->serialHex);

  Result<IssuedDevice> replaced = ca->issueDevice("imp-1", {kDeviceValidityDays, true});
  REQUIRE(replaced.ok());
  CHECK(serialHex(readCert(home.deviceCert("imp-1")).get()) == replaced->serialHex);
  CHECK(replaced->serialHex != first->serialHex);
}

TEST_CASE("init makes the code-signing key pair; force replaces it, otherwise it is kept") {
  TempDir dir;
  Home home(dir.path());
  REQUIRE(FleetCa::init(home, {}).ok());
  CHECK(modeOf(home.codeSigningKey()) == 0600);
  CHECK(modeOf(home.codeVerifyKey()) == 0644);
  Result<PkeyPtr> key = readSigningKey(home.codeSigningKey());
  Result<PkeyPtr> pub = readVerifyKey(home.codeVerifyKey());
  REQUIRE(key.ok());
  REQUIRE(pub.ok());
  const std::array<uint8_t, 32> sha{1, 2, 3};
  Ed25519Signature sig = signCode(key->get(), sha, 10);
  CHECK(verifyCode(pub->get(), sha, 10, sig));

  // A home whose CA is gone but whose signing key is there: a new CA, the same signing key.
  std::filesystem::remove(home.caKey());
  std::filesystem::remove(home.caCert());
  std::filesystem::remove(home.codeVerifyKey());
  REQUIRE(FleetCa::init(home, {}).ok());
  Result<PkeyPtr> kept = readVerifyKey(home.codeVerifyKey());
  REQUIRE(kept.ok());
  CHECK(verifyCode(kept->get(), sha, 10, sig));

  REQUIRE(FleetCa::init(home, {{}, true}).ok());
  Result<PkeyPtr> replaced = readVerifyKey(home.codeVerifyKey());
  REQUIRE(replaced.ok());
  CHECK_FALSE(verifyCode(replaced->get(), sha, 10, sig));
}

TEST_CASE("createCodeSigningKey adds a signing key to a home that has none, never over one") {
  TempDir dir;
  Home home(dir.path());
  REQUIRE(FleetCa::init(home, {}).ok());
  std::filesystem::remove(home.codeSigningKey());
  std::filesystem::remove(home.codeVerifyKey());
  REQUIRE(createCodeSigningKey(home, Replace::kNo).ok());
  CHECK(readSigningKey(home.codeSigningKey()).ok());
  CHECK(readVerifyKey(home.codeVerifyKey()).ok());
  Status again = createCodeSigningKey(home, Replace::kNo);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == ErrorCode::kAlreadyExists);
}

TEST_CASE("a device certificate names its group as OU and the device gets the code-verify key") {
  TempDir dir;
  Home home(dir.path());
  Result<FleetCa> ca = FleetCa::init(home, {});
  REQUIRE(ca.ok());
  IssueOptions options;
  options.group = "kitchen";
  Result<IssuedDevice> dev = ca->issueDevice("imp-1", options);
  REQUIRE(dev.ok());
  X509Ptr cert = readCert(home.deviceCert("imp-1"));
  CHECK(deviceIdFromCertificate(cert.get()) == "imp-1");
  CHECK(deviceGroupFromCertificate(cert.get()) == "kitchen");
  CHECK(verifies(home.caCert(), cert.get(), X509_PURPOSE_SSL_CLIENT));

  CHECK(dev->codeVerifyKeyPath == home.deviceCodeVerifyKey("imp-1"));
  Result<std::string> copy = readWholeFile(home.deviceCodeVerifyKey("imp-1"));
  Result<std::string> original = readWholeFile(home.codeVerifyKey());
  REQUIRE(copy.ok());
  REQUIRE(original.ok());
  CHECK(*copy == *original);

  // No group: no OU.
  Result<IssuedDevice> plain = ca->issueDevice("imp-2");
  REQUIRE(plain.ok());
  CHECK_FALSE(deviceGroupFromCertificate(readCert(home.deviceCert("imp-2")).get()).has_value());

  options.group = "a/b";
  Result<IssuedDevice> bad = ca->issueDevice("imp-3", options);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == ErrorCode::kInvalidArgument);
  CHECK_FALSE(std::filesystem::exists(home.deviceDir("imp-3")));

  // Without a signing key in the home there is nothing to copy.
  std::filesystem::remove(home.codeVerifyKey());
  Result<IssuedDevice> none = ca->issueDevice("imp-4");
  REQUIRE(none.ok());
  CHECK(none->codeVerifyKeyPath.empty());
  CHECK_FALSE(std::filesystem::exists(home.deviceCodeVerifyKey("imp-4")));
}
