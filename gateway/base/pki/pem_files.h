// Keys and certificates as PEM files: private keys as unencrypted PKCS#8 with mode 0600
// (protected by the 0700 home, like ssh and TLS server keys), certificates with mode 0644.
#pragma once

#include <filesystem>

#include "gateway/base/pki/credential_files.h"
#include "gateway/base/pki/openssl_ptr.h"
#include "gateway/base/pki/result.h"

namespace impgate::pki {

Result<PkeyPtr> readPrivateKeyFile(const std::filesystem::path& path);
// The first certificate in the file.
Result<X509Ptr> readCertificateFile(const std::filesystem::path& path);

Status writePrivateKeyFile(const std::filesystem::path& path, EVP_PKEY* key, Replace replace);
Status writeCertificateFile(const std::filesystem::path& path, X509* cert, Replace replace);

}  // namespace impgate::pki
