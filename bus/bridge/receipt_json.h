// The receipt payload (docs/topics.md, "Receipts"), written without a JSON library: one is
// published per agent message that asks for it, so it is built into a reused buffer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "bus/device_bus/device_bus.h"

namespace impgate::bus {

// Appends `text` as a JSON string literal. Invalid UTF-8 becomes U+FFFD, so bytes an agent
// supplied (correlation data) can never break the document.
void appendJsonString(std::string& out, std::string_view text);

// Replaces `out` with the receipt's JSON: event, seq, status, node, ts and, when set, corr.
void writeReceiptJson(std::string& out, const Receipt& receipt, uint64_t timestampMs);

}  // namespace impgate::bus
