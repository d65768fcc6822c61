#include "bus/fleet/json_reader.h"

#include "bus/fleet/descriptors.h"

namespace impgate::bus::fleet::detail {
namespace {

constexpr int kMaxDepth = 16;

// The deepest nesting of arrays and objects in `text`, counting outside strings, stopping
// once past kMaxDepth. Checked before parsing so that no deep document reaches the parser.
bool nestedTooDeep(std::string_view text) {
  int depth = 0;
  bool inString = false;
  bool escaped = false;
  for (char c : text) {
    if (inString) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        inString = false;
      }
      continue;
    }
    if (c == '"') {
      inString = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

}  // namespace

Error fieldError(std::string_view what, std::string_view key, std::string_view message) {
  std::string m(what);
  m.append(": \"").append(key).append("\" ").append(message);
  return Error{ErrorCode::kMalformed, std::move(m)};
}

Result<nlohmann::json> parseObject(std::string_view text, std::string_view what) {
  auto fail = [&](std::string_view why) {
    return Error{ErrorCode::kMalformed, std::string(what) + ": " + std::string(why)};
  };
  if (text.size() > kMaxDocumentSize) {
    return fail("larger than " + std::to_string(kMaxDocumentSize) + " bytes");
  }
  if (nestedTooDeep(text)) return fail("nested deeper than " + std::to_string(kMaxDepth));
  auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return fail("not JSON");
  if (!j.is_object()) return fail("not a JSON object");
  return j;
}

std::string dumpAscii(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', /*ensure_ascii=*/true, nlohmann::ordered_json::error_handler_t::replace);
}

std::optional<uint64_t> asU64(const nlohmann::json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer()) {
    auto v = value.get<int64_t>();
    if (v >= 0) return static_cast<uint64_t>(v);
  }
  return std::nullopt;
}

std::optional<int64_t> asI64(const nlohmann::json& value) {
  if (value.is_number_unsigned()) {
    auto v = value.get<uint64_t>();
    if (v <= static_cast<uint64_t>(INT64_MAX)) return static_cast<int64_t>(v);
    return std::nullopt;
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  return std::nullopt;
}

bool FieldReader::fail(std::string_view key, std::string_view message) {
  if (!error_) error_ = fieldError(what_, key, message);
  return false;
}

const nlohmann::json* FieldReader::field(std::string_view key) {
  if (error_) return nullptr;
  auto it = object_.find(key);
  if (it == object_.end()) {
    fail(key, "is missing");
    return nullptr;
  }
  return &*it;
}

bool FieldReader::text(std::string_view key, std::string& out) {
  const nlohmann::json* v = field(key);
  if (!v) return false;
  if (!v->is_string()) return fail(key, "must be a string");
  const auto& s = v->get_ref<const std::string&>();
  if (s.size() > kMaxTextField * 4) return fail(key, "is too long");
  out = s;
  return true;
}

bool FieldReader::boolean(std::string_view key, bool& out) {
  const nlohmann::json* v = field(key);
  if (!v) return false;
  if (!v->is_boolean()) return fail(key, "must be true or false");
  out = v->get<bool>();
  return true;
}

bool FieldReader::u32(std::string_view key, uint32_t& out) {
  const nlohmann::json* v = field(key);
  if (!v) return false;
  auto n = asU64(*v);
  if (!n || *n > UINT32_MAX) return fail(key, "must be an integer 0..4294967295");
  out = static_cast<uint32_t>(*n);
  return true;
}

bool FieldReader::u64(std::string_view key, uint64_t& out) {
  const nlohmann::json* v = field(key);
  if (!v) return false;
  auto n = asU64(*v);
  if (!n) return fail(key, "must be a non-negative integer");
  out = *n;
  return true;
}

bool FieldReader::i64(std::string_view key, int64_t& out) {
  const nlohmann::json* v = field(key);
  if (!v) return false;
  auto n = asI64(*v);
  if (!n) return fail(key, "must be an integer");
  out = *n;
  return true;
}

bool FieldReader::number(std::string_view key, double& out) {
  const nlohmann::json* v = field(key);
  if (!v) return false;
  if (!v->is_number()) return fail(key, "must be a number");
  out = v->get<double>();
  return true;
}

}  // namespace impgate::bus::fleet::detail
