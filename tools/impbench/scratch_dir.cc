#include "tools/impbench/scratch_dir.h"

#include <stdlib.h>

#include <cerrno>
#include <cstring>

namespace impgate::bench {

std::unique_ptr<ScratchDir> ScratchDir::create(const std::filesystem::path& parent,
                                               std::string& error) {
  std::string pattern = (parent / "impbench-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    error = "cannot create a temp dir in " + parent.string() + ": " + std::strerror(errno);
    return nullptr;
  }
  return std::unique_ptr<ScratchDir>(new ScratchDir(pattern));
}

ScratchDir::~ScratchDir() {
  if (keep_) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace impgate::bench
