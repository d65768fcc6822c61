// Structured, levelled log lines for every impgate binary.
//
// One line per event on stderr: `ts=... level=info comp=gateway msg="..." key=value ...`.
// Lines are written with a single write(2) so lines from several threads never interleave.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

namespace impgate::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Lines below this level are dropped. Defaults to kInfo; IMPGATE_LOG_LEVEL overrides it at start.
void setLevel(Level level);
Level level();
// Parses "debug", "info", "warn", "error"; returns false for anything else.
bool parseLevel(std::string_view text, Level& out);

struct Field {
  std::string_view key;
  std::string value;
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  template <typename N, typename = decltype(std::to_string(N{}))>
  Field(std::string_view k, N v) : key(k), value(std::to_string(v)) {}
};

void write(Level level, std::string_view component, std::string_view message,
           std::initializer_list<Field> fields = {});

inline void debug(std::string_view comp, std::string_view msg,
                  std::initializer_list<Field> f = {}) {
  if (level() <= Level::kDebug) write(Level::kDebug, comp, msg, f);
}
inline void info(std::string_view comp, std::string_view msg, std::initializer_list<Field> f = {}) {
  write(Level::kInfo, comp, msg, f);
}
inline void warn(std::string_view comp, std::string_view msg, std::initializer_list<Field> f = {}) {
  write(Level::kWarn, comp, msg, f);
}
inline void error(std::string_view comp, std::string_view msg,
                  std::initializer_list<Field> f = {}) {
  write(Level::kError, comp, msg, f);
}

}  // namespace impgate::log
