#include "gateway/base/home.h"

#include <cstdlib>

namespace impgate {

Home Home::resolve(std::string_view flag) {
  if (!flag.empty()) return Home(std::filesystem::path(flag));
  if (const char* env = std::getenv("IMPGATE_HOME"); env && *env) return Home(env);
  return Home(std::filesystem::current_path() / ".impgate");
}

}  // namespace impgate
