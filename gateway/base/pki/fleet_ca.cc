#include "gateway/base/pki/fleet_ca.h"

#include <openssl/rand.h>

#include <system_error>

#include "gateway/base/names.h"
#include "gateway/base/pki/certificate_builder.h"
#include "gateway/base/pki/certificate_info.h"
#include "gateway/base/pki/code_signing.h"
#include "gateway/base/pki/credential_files.h"
#include "gateway/base/pki/key_pair.h"
#include "gateway/base/pki/openssl_error.h"
#include "gateway/base/pki/pem_files.h"

namespace impgate::pki {
namespace {

using Clock = std::chrono::system_clock;

// Certificates start an hour in the past so a device whose clock runs a little slow still
// accepts them.
constexpr auto kBackdate = std::chrono::hours(1);

std::chrono::hours days(int n) {
  return std::chrono::hours(24) * n;
}

Result<std::string> randomHex(int bytes) {
  std::vector<unsigned char> raw(static_cast<std::size_t>(bytes));
  if (RAND_bytes(raw.data(), bytes) != 1) {
    return opensslError("cannot draw random bytes");
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char b : raw) {
    hex += kDigits[b >> 4];
    hex += kDigits[b & 0xf];
  }
  return hex;
}

bool pathExists(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::exists(std::filesystem::symlink_status(p, ec));
}

Status makeDirectories(std::initializer_list<std::filesystem::path> dirs) {
  for (const auto& dir : dirs) {
    if (Status s = makePrivateDirectory(dir); !s) {
      return s;
    }
  }
  return {};
}

}  // namespace

Result<FleetCa> FleetCa::init(const Home& home, const InitOptions& options) {
  if (!options.force && (pathExists(home.caKey()) || pathExists(home.caCert()))) {
    return Error{ErrorCode::kAlreadyExists,
                 "a fleet CA already exists in " + home.root().string() +
                     "; use --force to replace it (every certificate it issued stops working)"};
  }
  // Build everything in memory first, so bad input leaves the home as it was.
  Result<std::string> suffix = randomHex(8);
  if (!suffix) {
    return suffix.error();
  }
  Result<PkeyPtr> caKey = generateKeyPair();
  if (!caKey) {
    return caKey.error();
  }
  const auto now = Clock::now();
  CertificateSpec caSpec{CertificateRole::kFleetCa, "impgate fleet CA " + *suffix, {}, {},
                         now - kBackdate,           now + days(kCaValidityDays)};
  Result<X509Ptr> caCert = buildCertificate(caSpec, caKey->get(), Issuer{nullptr, caKey->get()});
  if (!caCert) {
    return caCert.error();
  }
  Result<PkeyPtr> gwKey = generateKeyPair();
  if (!gwKey) {
    return gwKey.error();
  }
  CertificateSpec gwSpec{
      CertificateRole::kGatewayServer, "impgate gateway", {}, options.serverNames, now - kBackdate,
      now + days(kGatewayValidityDays)};
  Result<X509Ptr> gwCert =
      buildCertificate(gwSpec, gwKey->get(), Issuer{caCert->get(), caKey->get()});
  if (!gwCert) {
    return gwCert.error();
  }

  if (Status s = makeDirectories(
          {home.root(), home.caKey().parent_path(), home.gatewayKey().parent_path()});
      !s) {
    return s.error();
  }
  // The CA files are created exclusively unless forced, so two concurrent inits cannot both
  // win; the gateway credential belongs to whichever CA is in place and is always replaced.
  const Replace caReplace = options.force ? Replace::kYes : Replace::kNo;
  if (Status s = writePrivateKeyFile(home.caKey(), caKey->get(), caReplace); !s) {
    return s.error();
  }
  if (Status s = writeCertificateFile(home.caCert(), caCert->get(), caReplace); !s) {
    return s.error();
  }
  if (Status s = writePrivateKeyFile(home.gatewayKey(), gwKey->get(), Replace::kYes); !s) {
    return s.error();
  }
  if (Status s = writeCertificateFile(home.gatewayCert(), gwCert->get(), Replace::kYes); !s) {
    return s.error();
  }
  if (options.force || !pathExists(home.codeSigningKey())) {
    if (Status s = createCodeSigningKey(home, Replace::kYes); !s) {
      return s.error();
    }
  } else if (Status s = ensureCodeVerifyKey(home); !s) {
    return s.error();
  }
  return FleetCa(home, std::move(caKey).value(), std::move(caCert).value());
}

Result<FleetCa> FleetCa::load(const Home& home) {
  Result<X509Ptr> cert = readCertificateFile(home.caCert());
  Result<PkeyPtr> key = cert ? readPrivateKeyFile(home.caKey()) : Result<PkeyPtr>(cert.error());
  if (!key) {
    if (key.error().code == ErrorCode::kNotFound) {
      return Error{ErrorCode::kNotFound, "no fleet CA in " + home.root().string() + " (" +
                                             key.error().message + "); run `impctl ca init` first"};
    }
    return key.error();
  }
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    Error e = opensslError(home.caKey().string() + " does not match " + home.caCert().string());
    return e;
  }
  return FleetCa(home, std::move(key).value(), std::move(cert).value());
}

Result<IssuedDevice> FleetCa::issueDevice(std::string_view id, const IssueOptions& options) const {
  if (!isValidDeviceId(id)) {
    return Error{ErrorCode::kInvalidArgument,
                 "invalid device id '" + std::string(id) +
                     "': use 1-64 characters from A-Z a-z 0-9 . _ - (not starting with '.')"};
  }
  if (!options.group.empty() && !isValidDeviceId(options.group)) {
    return Error{ErrorCode::kInvalidArgument,
                 "invalid group '" + options.group +
                     "': use 1-64 characters from A-Z a-z 0-9 . _ - (not starting with '.')"};
  }
  if (options.validity.count() <= 0 && options.validityDays <= 0) {
    return Error{ErrorCode::kInvalidArgument, "validity must be at least one day"};
  }
  const auto keyPath = home_.deviceKey(id);
  const auto certPath = home_.deviceCert(id);
  if (!options.replace && (pathExists(keyPath) || pathExists(certPath))) {
    return Error{ErrorCode::kAlreadyExists, "credentials for device '" + std::string(id) +
                                                "' already exist in " +
                                                home_.deviceDir(id).string()};
  }
  Result<PkeyPtr> key = generateKeyPair();
  if (!key) {
    return key.error();
  }
  const auto now = Clock::now();
  auto notAfter = options.validity.count() > 0
                      ? now + options.validity
                      : Clock::time_point(now + days(options.validityDays));
  // A certificate cannot usefully outlive the CA that vouches for it.
  if (std::optional<std::int64_t> caEnd = notAfterMs(cert_.get())) {
    notAfter = std::min(notAfter, Clock::time_point(std::chrono::milliseconds(*caEnd)));
  }
  CertificateSpec spec{CertificateRole::kDeviceClient,
                       std::string(id),
                       options.group,
                       {},
                       now - kBackdate,
                       notAfter};
  Result<X509Ptr> cert = buildCertificate(spec, key->get(), Issuer{cert_.get(), key_.get()});
  if (!cert) {
    return cert.error();
  }
  if (Status s = makeDirectories({home_.deviceDir(id).parent_path(), home_.deviceDir(id)}); !s) {
    return s.error();
  }
  const Replace replace = options.replace ? Replace::kYes : Replace::kNo;
  if (Status s = writePrivateKeyFile(keyPath, key->get(), replace); !s) {
    return s.error();
  }
  if (Status s = writeCertificateFile(certPath, cert->get(), replace); !s) {
    return s.error();
  }
  IssuedDevice issued{std::string(id),
                      serialHex(cert->get()),
                      notAfterMs(cert->get()).value_or(0),
                      keyPath,
                      certPath,
                      {}};
  // The device accepts only code signed by the key it was enrolled with; a re-issue brings it
  // up to date.
  if (pathExists(home_.codeVerifyKey())) {
    Result<std::string> pub = readWholeFile(home_.codeVerifyKey());
    if (!pub) {
      return pub.error();
    }
    issued.codeVerifyKeyPath = home_.deviceCodeVerifyKey(id);
    if (Status s = writeFileAtomically(issued.codeVerifyKeyPath, *pub, 0644, Replace::kYes); !s) {
      return s.error();
    }
  }
  return issued;
}

std::string FleetCa::name() const {
  return commonName(cert_.get());
}

}  // namespace impgate::pki
