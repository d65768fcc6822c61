#include "gateway/base/code/manifest.h"

#include <cassert>

#include "gateway/base/code/chunker.h"

namespace impgate::code {

uint64_t Manifest::totalSize() const {
  return chunks.empty() ? 0 : uint64_t{chunks.back().offset} + chunks.back().length;
}

void Manifest::append(const Sha256& sha, uint32_t length) {
  uint64_t offset = totalSize();
  assert(offset <= UINT32_MAX);
  chunks.push_back({sha, static_cast<uint32_t>(offset), length});
}

Manifest buildManifest(std::span<const uint8_t> code) {
  assert(code.size() <= UINT32_MAX);
  Manifest manifest;
  for (const ChunkBounds& b : chunkBoundaries(code)) {
    manifest.chunks.push_back({sha256(code.subspan(b.offset, b.length)),
                               static_cast<uint32_t>(b.offset), static_cast<uint32_t>(b.length)});
  }
  return manifest;
}

}  // namespace impgate::code
