#include "gateway/base/pki/code_signing.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <cassert>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <system_error>

#include "gateway/base/pki/openssl_error.h"
#include "gateway/base/pki/pem_files.h"

namespace impgate::pki {
namespace {

using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, OpensslDeleter<EVP_MD_CTX, EVP_MD_CTX_free>>;

int noPassphrase(char*, int, int, void*) {
  return 0;
}

std::string codeMessage(const std::array<uint8_t, 32>& sha, uint32_t size) {
  std::string m;
  m.reserve(kCodeSignaturePrefix.size() + sha.size() + 4);
  m.append(kCodeSignaturePrefix);
  m.append(reinterpret_cast<const char*>(sha.data()), sha.size());
  for (int shift = 24; shift >= 0; shift -= 8) {
    m.push_back(static_cast<char>(static_cast<uint8_t>(size >> shift)));
  }
  return m;
}

std::string descriptorMessage(std::string_view body) {
  std::string m;
  m.reserve(kDescriptorSignaturePrefix.size() + body.size());
  m.append(kDescriptorSignaturePrefix);
  m.append(body);
  return m;
}

// Signing with a valid Ed25519 key fails only when OpenSSL cannot allocate; there is no
// sensible signature to return then.
Ed25519Signature sign(EVP_PKEY* key, std::string_view message) {
  assert(isEd25519(key));
  Ed25519Signature sig{};
  size_t size = sig.size();
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), sig.data(), &size, reinterpret_cast<const uint8_t*>(message.data()),
                     message.size()) != 1 ||
      size != sig.size()) {
    std::fprintf(stderr, "impgate: Ed25519 signing failed: %s\n",
                 opensslError("EVP_DigestSign").message.c_str());
    std::abort();
  }
  return sig;
}

bool verify(EVP_PKEY* key, std::string_view message, std::span<const uint8_t> signature) {
  if (!isEd25519(key) || signature.size() != Ed25519Signature().size()) {
    return false;
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key) == 1 &&
            EVP_DigestVerify(ctx.get(), signature.data(), signature.size(),
                             reinterpret_cast<const uint8_t*>(message.data()), message.size()) == 1;
  ERR_clear_error();  // a failed verification leaves reasons queued; they are no error here
  return ok;
}

template <typename Parse>
Result<PkeyPtr> readKey(const std::filesystem::path& path, const char* what, Parse parse) {
  Result<std::string> text = readWholeFile(path);
  if (!text) {
    return text.error();
  }
  if (text->size() > INT_MAX) {
    return Error{ErrorCode::kInvalidArgument, path.string() + " is too large"};
  }
  BioPtr bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  PkeyPtr key(bio ? parse(bio.get()) : nullptr);
  OPENSSL_cleanse(text->data(), text->size());
  if (!key) {
    Error e = opensslError(std::string("no PEM ") + what + " in " + path.string());
    e.code = ErrorCode::kInvalidArgument;
    return e;
  }
  if (!isEd25519(key.get())) {
    return Error{ErrorCode::kInvalidArgument, path.string() + " holds a " +
                                                  EVP_PKEY_get0_type_name(key.get()) +
                                                  " key; the code-signing key must be Ed25519"};
  }
  return key;
}

}  // namespace

bool isEd25519(const EVP_PKEY* key) {
  return key != nullptr && EVP_PKEY_get_id(key) == EVP_PKEY_ED25519;
}

Result<PkeyPtr> generateSigningKey() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!key) {
    return opensslError("cannot generate an Ed25519 key");
  }
  return key;
}

Status writeSigningKey(const std::filesystem::path& path, EVP_PKEY* key, Replace replace) {
  assert(isEd25519(key));
  return writePrivateKeyFile(path, key, replace);
}

Status writeVerifyKey(const std::filesystem::path& path, EVP_PKEY* key, Replace replace) {
  assert(isEd25519(key));
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || !PEM_write_bio_PUBKEY(bio.get(), key)) {
    return opensslError("cannot encode the public key for " + path.string());
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  if (len <= 0 || !data) {
    return opensslError("cannot encode the public key for " + path.string());
  }
  return writeFileAtomically(path, std::string_view(data, static_cast<size_t>(len)), 0644, replace);
}

Result<PkeyPtr> readSigningKey(const std::filesystem::path& path) {
  return readKey(path, "private key", [](BIO* bio) {
    return PEM_read_bio_PrivateKey(bio, nullptr, noPassphrase, nullptr);
  });
}

Result<PkeyPtr> readVerifyKey(const std::filesystem::path& path) {
  return readKey(path, "public key",
                 [](BIO* bio) { return PEM_read_bio_PUBKEY(bio, nullptr, noPassphrase, nullptr); });
}

Ed25519Signature signCode(EVP_PKEY* key, const std::array<uint8_t, 32>& sha, uint32_t size) {
  return sign(key, codeMessage(sha, size));
}

Ed25519Signature signDescriptor(EVP_PKEY* key, std::string_view body) {
  return sign(key, descriptorMessage(body));
}

Status createCodeSigningKey(const Home& home, Replace replace) {
  Result<PkeyPtr> key = generateSigningKey();
  if (!key) {
    return key.error();
  }
  if (Status s = writeSigningKey(home.codeSigningKey(), key->get(), replace); !s) {
    return s;
  }
  return writeVerifyKey(home.codeVerifyKey(), key->get(), Replace::kYes);
}

Status ensureCodeVerifyKey(const Home& home) {
  std::error_code ec;
  if (std::filesystem::exists(home.codeVerifyKey(), ec)) {
    return {};
  }
  Result<PkeyPtr> key = readSigningKey(home.codeSigningKey());
  if (!key) {
    return key.error();
  }
  return writeVerifyKey(home.codeVerifyKey(), key->get(), Replace::kNo);
}

bool verifyCode(EVP_PKEY* publicKey, const std::array<uint8_t, 32>& sha, uint32_t size,
                std::span<const uint8_t> signature) {
  return verify(publicKey, codeMessage(sha, size), signature);
}

bool verifyDescriptor(EVP_PKEY* publicKey, std::string_view body,
                      std::span<const uint8_t> signature) {
  return verify(publicKey, descriptorMessage(body), signature);
}

}  // namespace impgate::pki
