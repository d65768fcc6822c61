// Fuzz target for the code-push payload decoders (bus/fleet): what any client of the broker can
// publish on the code-push topics, read by every gateway node and by impctl.
//
// Every input goes through every decoder, as is and as the body of a signed envelope. Beyond
// "no crash, no exception, no sanitizer report", it checks:
//  - a failure is kMalformed with a message (kBadSignature only from a verifier that says no);
//  - whatever decodes re-encodes to JSON that decodes to the same value, and passes check();
//  - an envelope opens with a verifier that accepts and never with one that refuses;
//  - base64 decoding of the input, when it succeeds, encodes back to the same text.
// A broken property aborts, which both libFuzzer and the corpus replay report.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "bus/fleet/base64.h"
#include "bus/fleet/descriptors.h"
#include "bus/fleet/envelope.h"

namespace {

namespace fleet = impgate::bus::fleet;

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_fleet_json: property broken: %s\n", what);
    std::abort();
  }
}

template <typename T>
void checkFailure(const fleet::Result<T>& result, const char* what) {
  if (result.ok()) return;
  require(result.error().code == fleet::ErrorCode::kMalformed, what);
  require(!result.error().message.empty(), what);
}

template <typename T, typename Encode, typename Decode>
void roundTrip(const fleet::Result<T>& decoded, Encode encode, Decode decode, const char* what) {
  checkFailure(decoded, what);
  if (!decoded.ok()) return;
  require(fleet::check(*decoded).ok(), what);
  auto again = decode(encode(*decoded));
  require(again.ok() && *again == *decoded, what);
}

void decodeAll(std::string_view text) {
  roundTrip(fleet::decodeVersionDescriptor(text), fleet::encodeVersionDescriptor,
            fleet::decodeVersionDescriptor, "version descriptor round trip");
  roundTrip(fleet::decodeDeploymentBody(text), fleet::encodeDeploymentBody,
            fleet::decodeDeploymentBody, "deployment body round trip");
  roundTrip(fleet::decodeGroupAssignment(text), fleet::encodeGroupAssignment,
            fleet::decodeGroupAssignment, "group assignment round trip");
  roundTrip(fleet::decodeDeviceCodeState(text), fleet::encodeDeviceCodeState,
            fleet::decodeDeviceCodeState, "device code state round trip");
  roundTrip(fleet::decodeNodeRolloutView(text), fleet::encodeNodeRolloutView,
            fleet::decodeNodeRolloutView, "rollout view round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  decodeAll(text);

  // The input as an envelope.
  auto envelope = fleet::decodeEnvelope(text);
  checkFailure(envelope, "envelope failure");
  if (envelope.ok()) {
    auto again = fleet::decodeEnvelope(fleet::encodeEnvelope(*envelope));
    require(again.ok() && *again == *envelope, "envelope round trip");
    decodeAll(envelope->body);
  }
  const fleet::Verifier yes = [](std::string_view, std::span<const uint8_t, 64>) { return true; };
  const fleet::Verifier no = [](std::string_view, std::span<const uint8_t, 64>) { return false; };
  auto opened = fleet::openEnvelope(text, yes);
  require(opened.ok() == envelope.ok(), "an accepting verifier opens every envelope");
  auto refused = fleet::openEnvelope(text, no);
  require(!refused.ok(), "a refusing verifier opens nothing");
  require(refused.error().code ==
              (envelope.ok() ? fleet::ErrorCode::kBadSignature : fleet::ErrorCode::kMalformed),
          "refused envelope error code");
  checkFailure(fleet::openDeployment(text, yes), "open deployment");
  checkFailure(fleet::openGroupAssignment(text, yes), "open group assignment");

  // The input wrapped in an envelope (as a signer would): the body must come back unchanged
  // when it is UTF-8, which encoding requires.
  auto wrapped = fleet::decodeEnvelope(fleet::encodeEnvelope(text, fleet::Signature{}));
  require(wrapped.ok(), "a wrapped body decodes");

  auto bytes = fleet::base64Decode(text);
  if (bytes) require(fleet::base64Encode(*bytes) == text, "base64 is canonical");
  return 0;
}
