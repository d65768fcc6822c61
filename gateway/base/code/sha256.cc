#include "gateway/base/code/sha256.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

namespace impgate::code {
namespace {

[[noreturn]] void hashFailed(const char* what) {
  std::fprintf(stderr, "impgate: SHA-256 failed: %s\n", what);
  std::abort();
}

}  // namespace

Sha256 sha256(std::span<const uint8_t> bytes) {
  Sha256 out{};
  unsigned int size = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), out.data(), &size, EVP_sha256(), nullptr) != 1 ||
      size != out.size()) {
    hashFailed("EVP_Digest");
  }
  return out;
}

Sha256 sha256(std::string_view bytes) {
  return sha256({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

Sha256Stream::Sha256Stream() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    hashFailed("EVP_DigestInit_ex");
  }
}

Sha256Stream::~Sha256Stream() {
  EVP_MD_CTX_free(ctx_);
}

Sha256Stream::Sha256Stream(Sha256Stream&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)) {}

Sha256Stream& Sha256Stream::operator=(Sha256Stream&& other) noexcept {
  std::swap(ctx_, other.ctx_);
  return *this;
}

void Sha256Stream::update(std::span<const uint8_t> bytes) {
  if (!ctx_ || EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()) != 1) {
    hashFailed("EVP_DigestUpdate");
  }
}

Sha256 Sha256Stream::finish() {
  Sha256 out{};
  unsigned int size = 0;
  if (!ctx_ || EVP_DigestFinal_ex(ctx_, out.data(), &size) != 1 || size != out.size() ||
      EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    hashFailed("EVP_DigestFinal_ex");
  }
  return out;
}

}  // namespace impgate::code
