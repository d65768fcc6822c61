// CodeStore: where a device keeps its code, for code push (docs/protocol.md, "Code push").
//
// The application implements it (FileCodeStore is the one impdev uses) and hands it to
// DeviceClient through CodePushOptions. It answers for the code the device runs (its SHA-256,
// its bytes and its manifest, so that chunks the device already holds are copied instead of
// fetched) and keeps the *partial download* of an offered version: the bytes fetched so far
// and which byte ranges of them were verified, kept across dropped links (and, for a store on
// disk, across restarts) so that a new offer of the same code fetches only the rest.
//
// Called only on the DeviceClient's loop thread; calls may block briefly (file I/O) and must
// not call back into the client. A store serves one device.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "gateway/base/code/manifest.h"
#include "gateway/base/code/sha256.h"
#include "gateway/device/result.h"

namespace impgate::device {

// A byte range of a code version: [offset, offset + length).
struct CodeRange {
  uint32_t offset = 0;
  uint32_t length = 0;

  friend bool operator==(const CodeRange&, const CodeRange&) = default;
};

class CodeStore {
 public:
  virtual ~CodeStore() = default;

  // The SHA-256 of the code the device runs; nullopt when it runs none. Asked for every HELLO.
  virtual std::optional<code::Sha256> runningCode() = 0;
  // The running code's manifest (each chunk's SHA-256, offset, length); empty when it runs
  // none or the manifest is unknown (then nothing is copied locally, everything is fetched).
  virtual code::Manifest runningManifest() = 0;
  // Fills `out` with the running code's bytes from `offset`. kStorage when it cannot.
  virtual Status readRunning(uint32_t offset, std::span<uint8_t> out) = 0;

  // Opens the partial download of `code` (`size` bytes), creating an empty one when there is
  // none, and returns the ranges of it recorded by markHeld() (in any order). A store may keep
  // one partial only: opening one may discard the others.
  virtual Result<std::vector<CodeRange>> openPartial(const code::Sha256& code, uint32_t size) = 0;
  // Writes `bytes` at `offset` of the open partial of `code`.
  virtual Status writePartial(const code::Sha256& code, uint32_t offset,
                              std::span<const uint8_t> bytes) = 0;
  // Fills `out` with the partial's bytes from `offset`.
  virtual Status readPartial(const code::Sha256& code, uint32_t offset, std::span<uint8_t> out) = 0;
  // Records that `range` of the partial holds verified bytes (a whole chunk whose SHA-256
  // matched); openPartial returns it from then on.
  virtual Status markHeld(const code::Sha256& code, CodeRange range) = 0;
  // Forgets the partial of `code` (e.g. its bytes did not hash to `code`).
  virtual void discardPartial(const code::Sha256& code) = 0;
  // Makes the complete, verified partial of `code` the running code, with `manifest`. Atomic
  // for the device: if it fails (or the device dies during it) the old code still runs, and on
  // success runningCode() is `code` from then on. The partial is consumed.
  virtual Status install(const code::Sha256& code, const code::Manifest& manifest) = 0;
};

}  // namespace impgate::device
