// Builds and signs the three kinds of certificate the fleet uses. The profile (extensions, key
// usage, purpose) follows from the role, so a caller cannot issue, say, a device certificate
// that is also a CA.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "gateway/base/pki/openssl_ptr.h"
#include "gateway/base/pki/result.h"

namespace impgate::pki {

enum class CertificateRole {
  kFleetCa,        // self-signed root: CA:TRUE (critical, pathlen 0), keyCertSign + cRLSign
  kGatewayServer,  // TLS server: serverAuth, digitalSignature, SANs for the gateway's names
  kDeviceClient,   // TLS client: clientAuth, digitalSignature; the CN is the device id
};

struct CertificateSpec {
  CertificateRole role = CertificateRole::kDeviceClient;
  std::string commonName;
  // Added to the subject (before the CN) when not empty: a device's group.
  std::string organizationalUnit;
  // kGatewayServer only: extra DNS names or IP literals. localhost, 127.0.0.1 and ::1 are
  // always included.
  std::vector<std::string> serverNames;
  std::chrono::system_clock::time_point notBefore;
  std::chrono::system_clock::time_point notAfter;
};

// Who signs. For kFleetCa, `cert` is null and `key` is the subject's own key (self-signed).
struct Issuer {
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
};

// A signed (ECDSA-SHA256) X.509 v3 certificate for `subjectKey` with a random positive 127-bit
// serial. Invalid server names are ErrorCode::kInvalidArgument.
Result<X509Ptr> buildCertificate(const CertificateSpec& spec, EVP_PKEY* subjectKey,
                                 const Issuer& issuer);

// True for an IPv4/IPv6 literal or a DNS name (letters, digits, '-', dot-separated labels of
// at most 63, optionally starting with "*." for a wildcard).
bool isValidServerName(std::string_view name);

}  // namespace impgate::pki
