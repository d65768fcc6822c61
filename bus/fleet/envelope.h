// Signed envelopes (docs/topics.md, "Code push"): how impctl publishes what nodes must only
// obey when the fleet's code-signing key vouches for it (deployments, group assignments).
//
//   {"body":"<the body JSON, as a JSON string>","signature":"<base64 of 64 bytes>"}
//
// The signature is Ed25519 over "impgate-desc-v1:" || the body's bytes, made and checked by
// gateway/base/pki/code_signing.h (signDescriptor / verifyDescriptor). This module does no
// cryptography: callers pass the signature they made, or a Verifier that checks one, so it
// does not depend on where the key lives (impctl may sign with a key kept off the gateway
// hosts).
//
// Pure functions; any thread (a Verifier is called on the caller's thread).
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "bus/fleet/descriptors.h"
#include "bus/fleet/result.h"

namespace impgate::bus::fleet {

struct SignedEnvelope {
  std::string body;  // the exact bytes that were signed
  Signature signature{};
  bool operator==(const SignedEnvelope&) const = default;
};

// True when `signature` is the fleet key's signature of `body` (e.g. a lambda over
// pki::verifyDescriptor(publicKey, body, signature)).
using Verifier = std::function<bool(std::string_view body, std::span<const uint8_t, 64> signature)>;

// `body` must be valid UTF-8 to survive the JSON string unchanged; the encoders of
// descriptors.h produce ASCII.
std::string encodeEnvelope(std::string_view body, std::span<const uint8_t, 64> signature);
std::string encodeEnvelope(const SignedEnvelope& envelope);

// The envelope's parts, unverified (kMalformed when the JSON, the body string or the
// signature is not as above).
Result<SignedEnvelope> decodeEnvelope(std::string_view json);

// The verified body: kMalformed as decodeEnvelope, kBadSignature when `verify` says no.
Result<std::string> openEnvelope(std::string_view json, const Verifier& verify);

// Open, then decode the body (its errors are kMalformed, naming the body).
Result<DeploymentBody> openDeployment(std::string_view json, const Verifier& verify);
Result<GroupAssignment> openGroupAssignment(std::string_view json, const Verifier& verify);

}  // namespace impgate::bus::fleet
