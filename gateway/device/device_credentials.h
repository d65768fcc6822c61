// A device's key and certificate, loaded once and shared by every connection attempt (and, in
// the simulator, by nothing else: each simulated device has its own).
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "gateway/device/result.h"

namespace impgate::device {

class DeviceCredentials {
 public:
  ~DeviceCredentials();
  DeviceCredentials(const DeviceCredentials&) = delete;
  DeviceCredentials& operator=(const DeviceCredentials&) = delete;

  // Loads PEM files; ErrorCode::kCredentials when either is missing or they do not match.
  static Result<std::shared_ptr<DeviceCredentials>> load(const std::string& certFile,
                                                         const std::string& keyFile);

  X509* certificate() const { return cert_; }
  EVP_PKEY* key() const { return key_; }

 private:
  DeviceCredentials(X509* cert, EVP_PKEY* key) : cert_(cert), key_(key) {}
  X509* cert_;
  EVP_PKEY* key_;
};

}  // namespace impgate::device
