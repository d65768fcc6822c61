// FileCodeStore: a CodeStore in a device's state directory, for impdev, the simulator and
// real Linux devices. Everything lives under `<state>/code/`:
//
//   current             the running code's bytes (absent: the device runs no code)
//   current.manifest    its manifest, as text: "<sha hex> <size>", then "<chunk sha hex>
//                       <length>" a line. A cache: rebuilt from `current` by the chunker when
//                       it is missing or names other code
//   partial-<sha>       the download of <sha> so far, at its final size (gaps are zeros)
//   partial-<sha>.held  the verified ranges of it, "<offset> <length>" a line, appended as
//                       chunks arrive
//
// Installing renames the complete partial (fsynced first) over `current` and then fsyncs the
// directory: a crash before the rename leaves the old code running, after it the new one; the
// manifest follows (written aside and renamed), and a crash in between is repaired on open.
// Partial bytes are not fsynced chunk by chunk: after a power loss a partial may claim bytes it
// lost, which the whole-code hash check catches (the partial is then discarded).
//
// Opening hashes `current` once and keeps only its hash and size in memory (a simulator runs
// thousands of these). Not thread-safe: one DeviceClient's loop thread uses it.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string_view>

#include "gateway/device/code_store.h"

namespace impgate::device {

class FileCodeStore final : public CodeStore {
 public:
  // Opens `stateDir` (creating it and its code/ folder, mode 0700). kStorage when it cannot
  // be created or `current` cannot be read.
  static Result<std::unique_ptr<FileCodeStore>> open(const std::filesystem::path& stateDir);

  std::optional<code::Sha256> runningCode() override { return running_; }
  code::Manifest runningManifest() override;
  Status readRunning(uint32_t offset, std::span<uint8_t> out) override;
  Result<std::vector<CodeRange>> openPartial(const code::Sha256& code, uint32_t size) override;
  Status writePartial(const code::Sha256& code, uint32_t offset,
                      std::span<const uint8_t> bytes) override;
  Status readPartial(const code::Sha256& code, uint32_t offset, std::span<uint8_t> out) override;
  Status markHeld(const code::Sha256& code, CodeRange range) override;
  void discardPartial(const code::Sha256& code) override;
  Status install(const code::Sha256& code, const code::Manifest& manifest) override;

  // The running code's size in bytes (0 when none).
  uint32_t runningSize() const { return runningSize_; }
  const std::filesystem::path& codeDir() const { return dir_; }

  // Test hook: called with "before-rename" once the new code and manifest are written aside
  // and synced, just before `current` is replaced. Returning false stops install() there, as a
  // crash would (nothing is cleaned up).
  std::function<bool(std::string_view step)> faultHook;

 private:
  explicit FileCodeStore(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path partialPath(const code::Sha256& code) const;
  std::filesystem::path heldPath(const code::Sha256& code) const;
  Status loadCurrent();

  std::filesystem::path dir_;  // <state>/code
  std::optional<code::Sha256> running_;
  uint32_t runningSize_ = 0;
};

}  // namespace impgate::device
