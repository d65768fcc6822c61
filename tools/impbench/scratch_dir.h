// A temporary directory for one benchmark run (the fleet's home, broker configs, logs), removed
// with everything in it when the owner destroys it, also when the run fails or is interrupted.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

namespace impgate::bench {

class ScratchDir {
 public:
  // Creates `<parent>/impbench-XXXXXX`; nullptr with `error` when it cannot.
  static std::unique_ptr<ScratchDir> create(const std::filesystem::path& parent,
                                            std::string& error);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Leaves the directory in place (for --keep-temp), so logs can be read after the run.
  void keep() { keep_ = true; }

 private:
  explicit ScratchDir(std::filesystem::path path) : path_(std::move(path)) {}
  std::filesystem::path path_;
  bool keep_ = false;
};

}  // namespace impgate::bench
