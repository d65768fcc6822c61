#include "gateway/base/pki/pem_files.h"

#include <openssl/pem.h>

#include <climits>
#include <string>

#include "gateway/base/pki/openssl_error.h"

namespace impgate::pki {
namespace {

// Reads `path` and hands a read-only BIO over its bytes to `parse`; the bytes are wiped after,
// since they may hold a private key.
// Our keys are never encrypted; without this OpenSSL would prompt on the terminal for one that is.
int noPassphrase(char*, int, int, void*) {
  return 0;
}

template <typename Parse>
auto parseFile(const std::filesystem::path& path, Parse parse) -> decltype(parse(nullptr)) {
  Result<std::string> text = readWholeFile(path);
  if (!text) {
    return text.error();
  }
  if (text->size() > INT_MAX) {
    return Error{ErrorCode::kIo, path.string() + " is too large"};
  }
  BioPtr bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  if (!bio) {
    return opensslError("cannot buffer " + path.string());
  }
  auto parsed = parse(bio.get());
  OPENSSL_cleanse(text->data(), text->size());
  return parsed;
}

Result<std::string> drain(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  if (len <= 0 || !data) {
    return opensslError("cannot encode PEM");
  }
  return std::string(data, static_cast<std::size_t>(len));
}

}  // namespace

Result<PkeyPtr> readPrivateKeyFile(const std::filesystem::path& path) {
  return parseFile(path, [&](BIO* bio) -> Result<PkeyPtr> {
    PkeyPtr key(PEM_read_bio_PrivateKey(bio, nullptr, noPassphrase, nullptr));
    if (!key) {
      return opensslError("cannot parse the private key in " + path.string());
    }
    return key;
  });
}

Result<X509Ptr> readCertificateFile(const std::filesystem::path& path) {
  return parseFile(path, [&](BIO* bio) -> Result<X509Ptr> {
    X509Ptr cert(PEM_read_bio_X509(bio, nullptr, noPassphrase, nullptr));
    if (!cert) {
      return opensslError("cannot parse the certificate in " + path.string());
    }
    return cert;
  });
}

Status writePrivateKeyFile(const std::filesystem::path& path, EVP_PKEY* key, Replace replace) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || !PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)) {
    return opensslError("cannot encode the private key for " + path.string());
  }
  Result<std::string> pem = drain(bio.get());
  if (!pem) {
    return pem.error();
  }
  Status s = writeFileAtomically(path, *pem, 0600, replace);
  OPENSSL_cleanse(pem->data(), pem->size());
  return s;
}

Status writeCertificateFile(const std::filesystem::path& path, X509* cert, Replace replace) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || !PEM_write_bio_X509(bio.get(), cert)) {
    return opensslError("cannot encode the certificate for " + path.string());
  }
  Result<std::string> pem = drain(bio.get());
  if (!pem) {
    return pem.error();
  }
  return writeFileAtomically(path, *pem, 0644, replace);
}

}  // namespace impgate::pki
