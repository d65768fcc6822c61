#include "gateway/base/metrics/text_format.h"

namespace impgate::metrics::text_format {
namespace {

bool isAlpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

bool isValidMetricName(std::string_view name) {
  if (name.empty() || isDigit(name.front())) return false;
  for (char c : name) {
    if (!isAlpha(c) && !isDigit(c) && c != '_' && c != ':') return false;
  }
  return true;
}

bool isValidLabelName(std::string_view name) {
  if (name.empty() || isDigit(name.front()) || name.starts_with("__")) return false;
  for (char c : name) {
    if (!isAlpha(c) && !isDigit(c) && c != '_') return false;
  }
  return true;
}

void appendHelp(std::string& out, std::string_view help) {
  for (char c : help) {
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
}

void appendLabelValue(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '"') {
      out.append("\\\"");
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
}

}  // namespace impgate::metrics::text_format
