// A fresh directory that is removed with everything in it when the owning TempDir is destroyed
// (also when a run fails or is interrupted), unless kept. Tests own one per broker, database or
// key set they create; impbench one per run (the fleet's home, broker configs, logs).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace impgate::testbed {

class TempDir {
 public:
  // Creates `<tmp>/<stem>-XXXXXX` under $TMPDIR (or /tmp); throws std::runtime_error if it
  // cannot (test start-up).
  explicit TempDir(std::string_view stem = "impgate-test");
  // Creates `<parent>/<stem>-XXXXXX`; throws like the above.
  TempDir(const std::filesystem::path& parent, std::string_view stem);
  // The same with the error as a value: nullptr with `error` (for impbench, which reports it).
  static std::unique_ptr<TempDir> create(const std::filesystem::path& parent, std::string_view stem,
                                         std::string& error);
  ~TempDir();

  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }
  // Leaves the directory in place (impbench --keep-temp), so its logs can be read afterwards.
  void keep() { keep_ = true; }

 private:
  void remove();

  std::filesystem::path path_;
  bool keep_ = false;
};

}  // namespace impgate::testbed
