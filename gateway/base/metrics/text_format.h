// Pieces of the Prometheus text exposition format 0.0.4 that the registry is built from: name
// rules and escaping. Internal to gateway/metrics, exposed for tests.
#pragma once

#include <string>
#include <string_view>

namespace impgate::metrics::text_format {

inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool isValidMetricName(std::string_view name);
// [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved by Prometheus).
bool isValidLabelName(std::string_view name);

// HELP text: '\' and newline escaped.
void appendHelp(std::string& out, std::string_view help);
// Label value: '\', '"' and newline escaped.
void appendLabelValue(std::string& out, std::string_view value);

}  // namespace impgate::metrics::text_format
