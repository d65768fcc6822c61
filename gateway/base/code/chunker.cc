#include "gateway/base/code/chunker.h"

#include <algorithm>

namespace impgate::code {
namespace {

constexpr uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

constexpr std::array<uint64_t, 256> makeGearTable() {
  std::array<uint64_t, 256> table{};
  for (uint64_t i = 0; i < table.size(); ++i) {
    table[i] = splitmix64(0x696d7067617465ULL + i);
  }
  return table;
}

constexpr std::array<uint64_t, 256> kGear = makeGearTable();

// The masks test the high bits of the fingerprint, which depend on the last 64 bytes (the low
// bits only on the last few). Normalized chunking: 11 bits (a cut at 1 in 2048 positions)
// until kAvgChunk, 10 bits (1 in 1024) after, which draws sizes towards the average. Measured
// on 741 one-line edits of 64 KiB programs, stronger normalization (13/9 bits) made the
// chunks after an edit resynchronize later (up to 38% of the file new, against 17% here),
// because which candidate cuts a chunk then depends more on where the chunk started.
constexpr uint64_t highBits(int n) {
  return ~uint64_t{0} << (64 - n);
}
constexpr uint64_t kMaskSmall = highBits(11);
constexpr uint64_t kMaskLarge = highBits(10);

}  // namespace

const std::array<uint64_t, 256>& gearTable() {
  return kGear;
}

size_t firstChunkLength(std::span<const uint8_t> data) {
  const size_t n = std::min(data.size(), kMaxChunk);
  if (n <= kMinChunk) {
    return n;
  }
  const size_t normal = std::min(kAvgChunk, n);
  uint64_t fp = 0;
  size_t i = kMinChunk;
  for (; i < normal; ++i) {
    fp = (fp << 1) + kGear[data[i]];
    if ((fp & kMaskSmall) == 0) {
      return i + 1;
    }
  }
  for (; i < n; ++i) {
    fp = (fp << 1) + kGear[data[i]];
    if ((fp & kMaskLarge) == 0) {
      return i + 1;
    }
  }
  return n;
}

std::vector<ChunkBounds> chunkBoundaries(std::span<const uint8_t> data) {
  std::vector<ChunkBounds> chunks;
  chunks.reserve(data.size() / kAvgChunk + 1);
  size_t offset = 0;
  while (offset < data.size()) {
    size_t length = firstChunkLength(data.subspan(offset));
    chunks.push_back({offset, length});
    offset += length;
  }
  return chunks;
}

}  // namespace impgate::code
