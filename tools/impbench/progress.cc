#include "tools/impbench/progress.h"

#include <chrono>
#include <cstdarg>
#include <cstdio>

namespace impgate::bench {
namespace {

const auto gStarted = std::chrono::steady_clock::now();

}  // namespace

void progress(const char* format, ...) {
  char text[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(text, sizeof text, format, args);
  va_end(args);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - gStarted).count();
  std::fprintf(stderr, "impbench [%7.1f s] %s\n", seconds, text);
}

}  // namespace impgate::bench
