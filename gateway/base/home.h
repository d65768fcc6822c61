// The impgate home directory: one folder holds the fleet CA, the gateway's server credentials,
// issued device credentials and the SQLite database, so impgate, impdev and impctl pointed at
// the same home work together.
//
// Resolution order: an explicit --home flag, then $IMPGATE_HOME, then ./.impgate.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace impgate {

class Home {
 public:
  explicit Home(std::filesystem::path root) : root_(std::move(root)) {}

  // `flag` is the value of --home (empty when not given).
  static Home resolve(std::string_view flag);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path caCert() const { return root_ / "ca" / "ca.crt"; }
  std::filesystem::path caKey() const { return root_ / "ca" / "ca.key"; }
  std::filesystem::path gatewayCert() const { return root_ / "gateway" / "gateway.crt"; }
  std::filesystem::path gatewayKey() const { return root_ / "gateway" / "gateway.key"; }
  std::filesystem::path deviceDir(std::string_view id) const {
    return root_ / "devices" / std::string(id);
  }
  std::filesystem::path deviceCert(std::string_view id) const {
    return deviceDir(id) / "device.crt";
  }
  std::filesystem::path deviceKey(std::string_view id) const {
    return deviceDir(id) / "device.key";
  }
  // The fleet's Ed25519 code-signing key pair (pki/code_signing.h). The private key may be
  // kept elsewhere (impctl code deploy --signing-key FILE); gateway hosts need only the .pub.
  std::filesystem::path codeSigningKey() const { return root_ / "ca" / "code-signing.key"; }
  std::filesystem::path codeVerifyKey() const { return root_ / "ca" / "code-signing.pub"; }
  // The public key a device was enrolled with; it accepts only code signed by its private half.
  std::filesystem::path deviceCodeVerifyKey(std::string_view id) const {
    return deviceDir(id) / "code-signing.pub";
  }
  std::filesystem::path database() const { return root_ / "impgate.db"; }

 private:
  std::filesystem::path root_;
};

}  // namespace impgate
