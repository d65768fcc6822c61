// A fresh directory under $TMPDIR (or /tmp) that is removed with everything in it when the
// owning TempDir is destroyed. Tests own one per broker, database or key set they create.
#pragma once

#include <filesystem>
#include <string_view>

namespace impgate::testing {

class TempDir {
 public:
  // Creates `<tmp>/<stem>-XXXXXX`; throws std::runtime_error if it cannot (test start-up).
  explicit TempDir(std::string_view stem = "impgate-test");
  ~TempDir();

  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  void remove();

  std::filesystem::path path_;
};

}  // namespace impgate::testing
