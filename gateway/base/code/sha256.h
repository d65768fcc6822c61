// SHA-256 of code versions and chunks (code push names both by it), on OpenSSL's EVP.
//
// Pure functions and a small value type; any thread. OpenSSL failing to hash (out of memory)
// is not a condition callers can handle, so it aborts rather than returning a wrong digest.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

namespace impgate::code {

// 32 raw bytes; the same type as protocol::CodeHash.
using Sha256 = std::array<uint8_t, 32>;

Sha256 sha256(std::span<const uint8_t> bytes);
Sha256 sha256(std::string_view bytes);

// Hashes bytes that arrive in pieces (e.g. a code version fetched chunk by chunk). Owns its
// EVP context; movable, not copyable. After finish() it starts over, empty.
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(Sha256Stream&& other) noexcept;
  Sha256Stream& operator=(Sha256Stream&& other) noexcept;
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;

  void update(std::span<const uint8_t> bytes);
  Sha256 finish();

 private:
  EVP_MD_CTX* ctx_;
};

}  // namespace impgate::code
