// Signed envelopes (bus/fleet/envelope.h). The signature is a stand-in here (the module does no
// cryptography): a verifier that compares with the bytes the "signer" made.
#include "bus/fleet/envelope.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>

using namespace impgate::bus::fleet;

namespace {

// A stand-in signature: the body's bytes folded into 64 bytes.
Signature fakeSign(std::string_view body) {
  Signature s{};
  for (std::size_t i = 0; i < body.size(); ++i) {
    s[i % s.size()] = static_cast<uint8_t>(s[i % s.size()] * 31 + static_cast<uint8_t>(body[i]));
  }
  s[0] ^= 0x5a;
  return s;
}

const Verifier kVerify = [](std::string_view body, std::span<const uint8_t, 64> sig) {
  Signature expected = fakeSign(body);
  return std::equal(sig.begin(), sig.end(), expected.begin());
};

DeploymentBody sampleDeployment() {
  DeploymentBody d;
  d.group = "kitchen";
  d.deployment = 3;
  d.code = std::string(64, 'c');
  d.size = 10;
  d.supported = {d.code};
  d.stages = {10, 100};
  d.haltFailures = 5;
  d.devices = 20;
  d.createdAtMs = 1;
  d.author = "impctl:ops";
  d.note = "n\xc3\xa9";
  return d;
}

}  // namespace

TEST_CASE("an envelope carries the body's exact bytes and its signature") {
  std::string body = encodeDeploymentBody(sampleDeployment());
  Signature sig = fakeSign(body);
  std::string text = encodeEnvelope(body, sig);
  // The body is a JSON string inside the envelope.
  auto j = nlohmann::json::parse(text);
  CHECK(j.size() == 2);
  CHECK(j["body"].get<std::string>() == body);
  CHECK(text.find("{\"body\":\"{\\\"group\\\":\\\"kitchen\\\",") == 0);

  auto envelope = decodeEnvelope(text);
  REQUIRE(envelope.ok());
  CHECK(envelope->body == body);
  CHECK(envelope->signature == sig);
  CHECK(encodeEnvelope(*envelope) == text);

  auto opened = openEnvelope(text, kVerify);
  REQUIRE(opened.ok());
  CHECK(*opened == body);
  auto deployment = openDeployment(text, kVerify);
  REQUIRE(deployment.ok());
  CHECK(*deployment == sampleDeployment());
}

TEST_CASE("a group assignment opens from its envelope") {
  std::string body = encodeGroupAssignment({"imp-7", "cellar", 42});
  auto assignment = openGroupAssignment(encodeEnvelope(body, fakeSign(body)), kVerify);
  REQUIRE(assignment.ok());
  CHECK(assignment->device == "imp-7");
  CHECK(assignment->group == "cellar");
  CHECK(assignment->atMs == 42);
}

TEST_CASE("an envelope whose body or signature was changed does not open") {
  std::string body = encodeDeploymentBody(sampleDeployment());
  Signature sig = fakeSign(body);

  // Another body under the first body's signature (a tampered deployment).
  DeploymentBody other = sampleDeployment();
  other.code = std::string(64, 'd');
  other.supported = {other.code};
  std::string forged = encodeEnvelope(encodeDeploymentBody(other), sig);
  auto opened = openDeployment(forged, kVerify);
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().code == ErrorCode::kBadSignature);
  CHECK(opened.error().message ==
        "signed envelope: the signature does not verify against the fleet's code-signing key");

  Signature flipped = sig;
  flipped[63] ^= 1;
  CHECK(openEnvelope(encodeEnvelope(body, flipped), kVerify).error().code ==
        ErrorCode::kBadSignature);
  // Without a verifier nothing opens.
  CHECK(openEnvelope(encodeEnvelope(body, sig), Verifier{}).error().code ==
        ErrorCode::kBadSignature);
  // Same JSON, other bytes (a space added): the signature covers bytes, not meaning.
  std::string spaced = body;
  spaced.insert(1, " ");
  CHECK(openEnvelope(encodeEnvelope(spaced, sig), kVerify).error().code ==
        ErrorCode::kBadSignature);
}

TEST_CASE("malformed envelopes are refused with a clear error") {
  auto error = [](const std::string& text) {
    auto r = decodeEnvelope(text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kMalformed);
    return r.error().message;
  };
  std::string sig = "\"" + std::string(86, 'A') + "==\"";
  CHECK(error("") == "signed envelope: not JSON");
  CHECK(error("[]") == "signed envelope: not a JSON object");
  CHECK(error("{\"signature\":" + sig + "}") == "signed envelope: \"body\" is missing");
  CHECK(error("{\"body\":{\"group\":\"g\"},\"signature\":" + sig + "}") ==
        "signed envelope: \"body\" must be a string (the body's JSON)");
  CHECK(error("{\"body\":\"{}\"}") == "signed envelope: \"signature\" is missing");
  CHECK(error("{\"body\":\"{}\",\"signature\":\"AAAA\"}") ==
        "signed envelope: \"signature\" must be 64 bytes in base64");
  CHECK(error("{\"body\":\"{}\",\"signature\":\"" + std::string(88, '*') + "\"}") ==
        "signed envelope: \"signature\" must be 64 bytes in base64");
  CHECK(error("{\"body\":\"{}\",\"signature\":7}") ==
        "signed envelope: \"signature\" must be a string");
  CHECK(decodeEnvelope("{\"body\":\"{}\",\"signature\":" + sig + "}").ok());

  // A verified body that is not a valid deployment: kMalformed, said to be the body's.
  std::string body = "{\"group\":\"kitchen\"}";
  auto r = openDeployment(encodeEnvelope(body, fakeSign(body)), kVerify);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kMalformed);
  CHECK(r.error().message == "signed envelope body: deployment body: \"deployment\" is missing");
  // The signature is checked before the body is parsed.
  CHECK(openDeployment(encodeEnvelope("not json", Signature{}), kVerify).error().code ==
        ErrorCode::kBadSignature);
}
