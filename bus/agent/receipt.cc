#include "bus/agent/receipt.h"

#include "bus/agent/json_fields.h"

namespace impgate::bus {

std::optional<Receipt> parseReceipt(std::string_view device, std::string_view json,
                                    std::string_view correlationData) {
  auto obj = json_fields::parseObject(json);
  if (!obj) return std::nullopt;
  auto event = json_fields::string(*obj, "event");
  auto seq = json_fields::integer(*obj, "seq");
  auto status = json_fields::string(*obj, "status");
  if (!event || !seq || *seq < 0 || !status || status->empty()) return std::nullopt;

  Receipt r;
  r.device = device;
  r.event = std::move(*event);
  r.seq = static_cast<uint64_t>(*seq);
  r.status = std::move(*status);
  r.node = json_fields::string(*obj, "node").value_or("");
  r.ts = json_fields::integer(*obj, "ts").value_or(0);
  if (auto corr = json_fields::string(*obj, "corr")) {
    r.corr = std::move(*corr);
  } else {
    r.corr = correlationData;
  }
  return r;
}

}  // namespace impgate::bus
