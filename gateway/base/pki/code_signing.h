// The fleet's code-signing key: Ed25519, kept apart from the TLS CA. impctl signs every code
// version (and every deployment and group descriptor it publishes) with the private key
// (ca/code-signing.key, or a file kept off the gateway hosts); gateways and devices verify
// with the public key (ca/code-signing.pub, devices/<id>/code-signing.pub), which `device
// enroll` gives each device. docs/protocol.md ("Code push") and docs/topics.md define the
// signed messages:
//   code:       "impgate-code-v1:" || sha256 (32 bytes) || size (u32 big-endian)   (52 bytes)
//   descriptor: "impgate-desc-v1:" || the descriptor body's bytes
//
// Pure functions over OpenSSL EVP keys; any thread. The keys are owned by the caller (PkeyPtr).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

#include "gateway/base/home.h"
#include "gateway/base/pki/credential_files.h"
#include "gateway/base/pki/openssl_ptr.h"
#include "gateway/base/pki/result.h"

namespace impgate::pki {

using Ed25519Signature = std::array<uint8_t, 64>;

inline constexpr std::string_view kCodeSignaturePrefix = "impgate-code-v1:";
inline constexpr std::string_view kDescriptorSignaturePrefix = "impgate-desc-v1:";

// A fresh Ed25519 key pair from OpenSSL's default random source.
Result<PkeyPtr> generateSigningKey();

// The private key as PKCS#8 PEM, mode 0600 (pem_files.h); the public key as
// SubjectPublicKeyInfo PEM, mode 0644. `key` must be Ed25519 (asserted); for writeVerifyKey a
// private key is fine, only its public half is written.
Status writeSigningKey(const std::filesystem::path& path, EVP_PKEY* key, Replace replace);
Status writeVerifyKey(const std::filesystem::path& path, EVP_PKEY* key, Replace replace);

// The key in `path`. A missing file is ErrorCode::kNotFound; a file that holds no key, or a
// key that is not Ed25519 (e.g. the CA's P-256 key), is ErrorCode::kInvalidArgument with a
// message naming the file.
Result<PkeyPtr> readSigningKey(const std::filesystem::path& path);
Result<PkeyPtr> readVerifyKey(const std::filesystem::path& path);

// `key` is an Ed25519 private key (from generateSigningKey or readSigningKey; asserted).
// Ed25519 is deterministic: the same key and message always give the same signature.
Ed25519Signature signCode(EVP_PKEY* key, const std::array<uint8_t, 32>& sha, uint32_t size);
Ed25519Signature signDescriptor(EVP_PKEY* key, std::string_view body);

// True only if `signature` is 64 bytes and a valid signature by `publicKey` (an Ed25519 key,
// public or private) of the code message / descriptor message.
bool verifyCode(EVP_PKEY* publicKey, const std::array<uint8_t, 32>& sha, uint32_t size,
                std::span<const uint8_t> signature);
bool verifyDescriptor(EVP_PKEY* publicKey, std::string_view body,
                      std::span<const uint8_t> signature);

// Creates the fleet's code-signing key pair in `home`: home.codeSigningKey() (0600), then
// home.codeVerifyKey(). The ca/ directory must exist. With Replace::kNo an existing private
// key is ErrorCode::kAlreadyExists and nothing is written.
Status createCodeSigningKey(const Home& home, Replace replace);

// Writes home.codeVerifyKey() from home.codeSigningKey() when the public file is missing
// (e.g. a home whose .pub was deleted); does nothing when it exists.
Status ensureCodeVerifyKey(const Home& home);

// True for an Ed25519 key.
bool isEd25519(const EVP_PKEY* key);

}  // namespace impgate::pki
