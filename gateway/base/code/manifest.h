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

// Chunks `code` with chunkBoundaries() and hashes each chunk. The caller keeps `code` under
// 4 GiB (code push allows 4 MiB); asserted.
Manifest buildManifest(std::span<const uint8_t> code);

}  // namespace impgate::code
