// A code version's manifest: its chunks in order, each with its SHA-256, offset and length.
// The chunks concatenated are the code. Code push sends a manifest in CODE_OFFER and the bus
// in the version descriptor; a device keeps the manifest of the code it runs so that it can
// copy the chunks it already holds (delta) instead of fetching them.
//
// A plain value; any thread.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "gateway/base/code/sha256.h"

namespace impgate::code {

struct ManifestChunk {
  Sha256 sha{};
  uint32_t offset = 0;  // in the whole code
  uint32_t length = 0;

  friend bool operator==(const ManifestChunk&, const ManifestChunk&) = default;
};

struct Manifest {
  std::vector<ManifestChunk> chunks;

  // The code's size: the sum of the chunk lengths (0 for no chunks).
  uint64_t totalSize() const;
  // Adds a chunk after the last one (offset = totalSize()), e.g. from a CODE_OFFER's list.
  void append(const Sha256& sha, uint32_t length);

  friend bool operator==(const Manifest&, const Manifest&) = default;
};

// Chunks `code` with chunkBoundaries() and hashes each chunk. Note that the chunk bounds
// alone do not keep a 4 MiB code within protocol::kMaxCodeChunks (4096): content that cuts
// near the 512-byte minimum everywhere gives up to 8192 chunks (typical content averages
// ~2 KiB, ~2000 chunks for 4 MiB). Whoever accepts code for push (impctl code deploy) refuses
// a manifest with more than 4096 chunks. The caller keeps `code` under
// 4 GiB (code push allows 4 MiB); asserted.
Manifest buildManifest(std::span<const uint8_t> code);

}  // namespace impgate::code
