// The fleet CA: the root every device and gateway certificate chains to, kept in the impgate
// home (ca/ca.key, ca/ca.crt) next to the gateway's server credential it issued. impctl creates
// it (init) and issues device credentials with it (load + issueDevice); the gateway only reads
// ca/ca.crt and its own credential.
//
// A FleetCa owns the CA key in memory for its lifetime; it is movable, not copyable.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/base/home.h"
#include "gateway/base/pki/openssl_ptr.h"
#include "gateway/base/pki/result.h"

namespace impgate::pki {

inline constexpr int kCaValidityDays = 3650;
inline constexpr int kGatewayValidityDays = 730;
inline constexpr int kDeviceValidityDays = 3650;

struct InitOptions {
  // DNS names or IP addresses devices use to reach the gateway, besides localhost, 127.0.0.1
  // and ::1 which are always included.
  std::vector<std::string> serverNames;
  // Replace an existing CA. Every credential it issued stops verifying.
  bool force = false;
};

struct IssueOptions {
  int validityDays = kDeviceValidityDays;  // capped at the CA's own expiry
  bool replace = false;                    // overwrite an existing key and certificate
  // When positive, replaces validityDays: short-lived certificates, for tests of expiry.
  std::chrono::seconds validity{0};
  // The device's group, written as the certificate subject's OU (deviceGroupFromCertificate);
  // empty: no OU. Must pass isValidDeviceId().
  std::string group{};
};

// What issueDevice() wrote, and the facts the registry records.
struct IssuedDevice {
  std::string id;
  std::string serialHex;  // upper-case hex, as `openssl x509 -serial` prints it
  std::int64_t notAfterMs = 0;
  std::filesystem::path keyPath;
  std::filesystem::path certPath;
  // home.deviceCodeVerifyKey(id) when the fleet has a code-signing key (a copy of
  // home.codeVerifyKey()), else empty.
  std::filesystem::path codeVerifyKeyPath;
};

class FleetCa {
 public:
  // Creates the CA (P-256 key, self-signed, 10 years), the gateway's server credential
  // (2 years) and the fleet's code-signing key pair (code_signing.h) in `home`. Refuses with
  // ErrorCode::kAlreadyExists if a CA is there, unless options.force, which replaces the
  // code-signing key too; without force an existing code-signing key (and a CA missing) is
  // kept. Invalid server names are refused before anything is written.
  static Result<FleetCa> init(const Home& home, const InitOptions& options);

  // The CA in `home`. A missing CA is ErrorCode::kNotFound with a message telling the operator
  // to run `impctl ca init`; a key that does not match the certificate is ErrorCode::kCrypto.
  static Result<FleetCa> load(const Home& home);

  // Issues the device's key (0600) and certificate (CN = id, OU = options.group, clientAuth)
  // into home.deviceDir(id), with a copy of the fleet's code-verify key when there is one (the
  // key the device accepts code with). An invalid id or group is ErrorCode::kInvalidArgument;
  // existing files are ErrorCode::kAlreadyExists unless options.replace.
  Result<IssuedDevice> issueDevice(std::string_view id, const IssueOptions& options = {}) const;

  X509* certificate() const { return cert_.get(); }
  // "impgate fleet CA <hex>": tells fleets apart.
  std::string name() const;

 private:
  FleetCa(Home home, PkeyPtr key, X509Ptr cert)
      : home_(std::move(home)), key_(std::move(key)), cert_(std::move(cert)) {}

  Home home_;
  PkeyPtr key_;
  X509Ptr cert_;
};

}  // namespace impgate::pki
