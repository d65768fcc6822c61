#include "gateway/device/device_credentials.h"

#include <openssl/pem.h>

#include <cstdio>

#include "gateway/base/net/tls_context.h"

namespace impgate::device {

DeviceCredentials::~DeviceCredentials() {
  X509_free(cert_);
  EVP_PKEY_free(key_);
}

Result<std::shared_ptr<DeviceCredentials>> DeviceCredentials::load(const std::string& certFile,
                                                                   const std::string& keyFile) {
  FILE* cf = std::fopen(certFile.c_str(), "r");
  if (!cf) {
    return Error{ErrorCode::kCredentials, "cannot read device certificate " + certFile};
  }
  X509* cert = PEM_read_X509(cf, nullptr, nullptr, nullptr);
  std::fclose(cf);
  FILE* kf = std::fopen(keyFile.c_str(), "r");
  if (!kf) {
    X509_free(cert);
    return Error{ErrorCode::kCredentials, "cannot read device key " + keyFile};
  }
  EVP_PKEY* key = PEM_read_PrivateKey(kf, nullptr, nullptr, nullptr);
  std::fclose(kf);
  if (!cert || !key || X509_check_private_key(cert, key) != 1) {
    X509_free(cert);
    EVP_PKEY_free(key);
    return Error{
        ErrorCode::kCredentials,
        "device certificate and key are unreadable or do not match: " + net::takeOpenSslError()};
  }
  return std::shared_ptr<DeviceCredentials>(new DeviceCredentials(cert, key));
}

}  // namespace impgate::device
