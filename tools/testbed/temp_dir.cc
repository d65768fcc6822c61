#include "tools/testbed/temp_dir.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace impgate::testbed {
namespace {

std::filesystem::path defaultParent() {
  const char* base = std::getenv("TMPDIR");
  return (base && *base) ? base : "/tmp";
}

}  // namespace

TempDir::TempDir(std::string_view stem) : TempDir(defaultParent(), stem) {}

TempDir::TempDir(const std::filesystem::path& parent, std::string_view stem) {
  std::string pattern = (parent / (std::string(stem) + "-XXXXXX")).string();
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    throw std::runtime_error("cannot create a temp dir in " + parent.string() + ": " +
                             std::strerror(errno));
  }
  path_ = buf.data();
}

std::unique_ptr<TempDir> TempDir::create(const std::filesystem::path& parent, std::string_view stem,
                                         std::string& error) {
  try {
    return std::make_unique<TempDir>(parent, stem);
  } catch (const std::runtime_error& e) {
    error = e.what();
    return nullptr;
  }
}

TempDir::~TempDir() {
  remove();
}

TempDir::TempDir(TempDir&& other) noexcept
    : path_(std::exchange(other.path_, {})), keep_(other.keep_) {}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    remove();
    path_ = std::exchange(other.path_, {});
    keep_ = other.keep_;
  }
  return *this;
}

void TempDir::remove() {
  if (path_.empty()) return;
  if (!keep_) {
    std::error_code ec;  // Best effort: a leftover directory must not fail the run.
    std::filesystem::remove_all(path_, ec);
  }
  path_.clear();
}

}  // namespace impgate::testbed
