#include "bus/fleet/envelope.h"

#include <algorithm>

#include "bus/fleet/base64.h"
#include "bus/fleet/json_reader.h"

namespace impgate::bus::fleet {
namespace {

constexpr std::string_view kEnvelopeDoc = "signed envelope";

// An error of the body, said to be one inside an envelope.
Error inEnvelope(const Error& error) {
  return Error{error.code, "signed envelope body: " + error.message};
}

}  // namespace

std::string encodeEnvelope(std::string_view body, std::span<const uint8_t, 64> signature) {
  nlohmann::ordered_json j;
  j["body"] = std::string(body);
  j["signature"] = base64Encode(signature);
  return detail::dumpAscii(j);
}

std::string encodeEnvelope(const SignedEnvelope& envelope) {
  return encodeEnvelope(envelope.body, envelope.signature);
}

Result<SignedEnvelope> decodeEnvelope(std::string_view json) {
  auto object = detail::parseObject(json, kEnvelopeDoc);
  if (!object) return object.error();
  detail::FieldReader r(*object, kEnvelopeDoc);
  SignedEnvelope envelope;
  const nlohmann::json* body = r.field("body");
  if (!body) return r.error();
  if (!body->is_string()) {
    return detail::fieldError(kEnvelopeDoc, "body", "must be a string (the body's JSON)");
  }
  envelope.body = body->get<std::string>();
  std::string signature;
  if (!r.text("signature", signature)) return r.error();
  auto sig = base64Decode(signature);
  if (!sig || sig->size() != envelope.signature.size()) {
    return detail::fieldError(kEnvelopeDoc, "signature", "must be 64 bytes in base64");
  }
  std::copy(sig->begin(), sig->end(), envelope.signature.begin());
  return envelope;
}

Result<std::string> openEnvelope(std::string_view json, const Verifier& verify) {
  auto envelope = decodeEnvelope(json);
  if (!envelope) return envelope.error();
  if (!verify || !verify(envelope->body, std::span<const uint8_t, 64>(envelope->signature))) {
    return Error{ErrorCode::kBadSignature,
                 "signed envelope: the signature does not verify against the fleet's "
                 "code-signing key"};
  }
  return std::move(envelope->body);
}

Result<DeploymentBody> openDeployment(std::string_view json, const Verifier& verify) {
  auto body = openEnvelope(json, verify);
  if (!body) return body.error();
  auto deployment = decodeDeploymentBody(*body);
  if (!deployment) return inEnvelope(deployment.error());
  return deployment;
}

Result<GroupAssignment> openGroupAssignment(std::string_view json, const Verifier& verify) {
  auto body = openEnvelope(json, verify);
  if (!body) return body.error();
  auto assignment = decodeGroupAssignment(*body);
  if (!assignment) return inEnvelope(assignment.error());
  return assignment;
}

}  // namespace impgate::bus::fleet
