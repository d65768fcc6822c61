#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gateway/base/code/chunker.h"
#include "gateway/base/code/hex.h"
#include "gateway/base/code/manifest.h"

using namespace impgate::code;

namespace {

using Bytes = std::vector<uint8_t>;

Bytes randomBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes out(size);
  for (uint8_t& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

// A pseudo-random program: lines of plausible source text, about `size` bytes.
std::string program(size_t size, uint32_t seed) {
  static const char* const kWords[] = {
      "local",  "function", "return",  "if",          "then", "end",   "for",  "in",    "pairs",
      "device", "send",     "reading", "temperature", "led",  "on",    "off",  "=",     "==",
      "+",      "(",        ")",       "{",           "}",    "nil",   "true", "false", "agent",
      "imp",    "wakeup",   "sleep",   "0.5",         "42",   "\"ok\""};
  std::mt19937 rng(seed);
  std::string out;
  while (out.size() < size) {
    out.append(rng() % 4 * 2, ' ');
    int words = 2 + static_cast<int>(rng() % 9);
    for (int w = 0; w < words; ++w) {
      out += kWords[rng() % std::size(kWords)];
      out += w + 1 < words ? " " : "";
    }
    out += "  -- " + std::to_string(rng() % 100000) + "\n";
  }
  out.resize(size);
  return out;
}

std::span<const uint8_t> bytesOf(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

void requireValidChunking(std::span<const uint8_t> data, const std::vector<ChunkBounds>& chunks) {
  size_t offset = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    INFO("chunk " << i << " of " << chunks.size());
    REQUIRE(chunks[i].offset == offset);
    REQUIRE(chunks[i].length >= 1);
    REQUIRE(chunks[i].length <= kMaxChunk);
    if (i + 1 < chunks.size()) {
      REQUIRE(chunks[i].length > kMinChunk);
    }
    offset += chunks[i].length;
  }
  REQUIRE(offset == data.size());
}

}  // namespace

TEST_CASE("the gear table is the documented formula") {
  const auto& gear = gearTable();
  // splitmix64(0x696d7067617465), computed independently.
  CHECK(gear[0] == 0x9e506cff4a9e9f47ULL);
  std::set<uint64_t> distinct(gear.begin(), gear.end());
  CHECK(distinct.size() == 256);
}

TEST_CASE("chunks cover the input exactly, within the size bounds") {
  for (size_t size : {size_t{0}, size_t{1}, kMinChunk, kMinChunk + 1, kMaxChunk, kMaxChunk + 1,
                      size_t{100000}, size_t{4} << 20}) {
    INFO("size " << size);
    Bytes data = randomBytes(size, static_cast<uint32_t>(size));
    auto chunks = chunkBoundaries(data);
    requireValidChunking(data, chunks);
    if (size > 0 && size <= kMinChunk) {
      CHECK(chunks.size() == 1);
    }
  }
  // Content without any cut point (all zero bytes) is cut at kMaxChunk.
  Bytes zeros(3 * kMaxChunk + 7, 0);
  auto chunks = chunkBoundaries(zeros);
  requireValidChunking(zeros, chunks);
  CHECK(chunks.size() == 4);
  CHECK(chunks[0].length == kMaxChunk);
}

TEST_CASE("chunking is deterministic and chunks average about 2 KiB") {
  Bytes data = randomBytes(1 << 20, 7);
  auto a = chunkBoundaries(data);
  auto b = chunkBoundaries(data);
  CHECK(a == b);
  double average = static_cast<double>(data.size()) / static_cast<double>(a.size());
  std::printf("chunker: 1 MiB of random bytes -> %zu chunks, average %.0f bytes\n", a.size(),
              average);
  CHECK(average > 1500);
  CHECK(average < 3500);
}

TEST_CASE("the chunk boundaries of a fixed input never change") {
  // A change to the table, masks or bounds changes every manifest, which breaks delta updates
  // between gateways and devices of different builds. std::mt19937 is fully specified, so
  // this input is the same everywhere.
  std::string code = program(16 * 1024, 1);
  std::string lengths;
  for (const ChunkBounds& b : chunkBoundaries(bytesOf(code))) {
    lengths += std::to_string(b.length) + " ";
  }
  std::printf("chunker: golden lengths: %s\n", lengths.c_str());
  CHECK(lengths == "1212 1573 705 2271 2407 1097 3892 2357 870 ");
}

TEST_CASE("a manifest's chunks concatenated are the code") {
  std::string code = program(64 * 1024, 1);
  Manifest m = buildManifest(bytesOf(code));
  CHECK(m.totalSize() == code.size());
  std::string joined;
  for (const ManifestChunk& c : m.chunks) {
    std::string piece = code.substr(c.offset, c.length);
    CHECK(sha256(piece) == c.sha);
    joined += piece;
  }
  CHECK(joined == code);

  Manifest rebuilt;
  for (const ManifestChunk& c : m.chunks) rebuilt.append(c.sha, c.length);
  CHECK(rebuilt == m);
  CHECK(Manifest{}.totalSize() == 0);
  CHECK(buildManifest({}).chunks.empty());
}

namespace {

// The bytes of the chunks of `next` whose sha256 is not among the chunks of `old`: what a
// device running `old` fetches to run `next`.
size_t newChunkBytes(const std::string& old, const std::string& next, size_t* newChunks = nullptr,
                     size_t* totalChunks = nullptr) {
  std::set<Sha256> held;
  for (const ManifestChunk& c : buildManifest(bytesOf(old)).chunks) held.insert(c.sha);
  Manifest m = buildManifest(bytesOf(next));
  size_t bytes = 0;
  size_t count = 0;
  for (const ManifestChunk& c : m.chunks) {
    if (held.count(c.sha) == 0) {
      bytes += c.length;
      ++count;
    }
  }
  if (newChunks) *newChunks = count;
  if (totalChunks) *totalChunks = m.chunks.size();
  return bytes;
}

const std::string kLine = "  send(\"reading\", temperature() + 0.5)  -- calibrated\n";

}  // namespace

TEST_CASE("one line inserted in the middle of a 64 KiB program costs well under 10%") {
  const std::string v1 = program(64 * 1024, 2026);
  std::string v2 = v1;
  v2.insert(v1.find('\n', v1.size() / 2) + 1, kLine);
  size_t newChunks = 0;
  size_t totalChunks = 0;
  size_t newBytes = newChunkBytes(v1, v2, &newChunks, &totalChunks);
  double percent = 100.0 * static_cast<double>(newBytes) / (64.0 * 1024);
  std::printf(
      "chunker: one line inserted in the middle of a 64 KiB program: %zu of %zu chunks new, "
      "%zu bytes = %.1f%% of 64 KiB\n",
      newChunks, totalChunks, newBytes, percent);
  CHECK(newChunks >= 1);
  CHECK(percent < 10.0);

  // The same edit at 19 places through the file, for the typical figure.
  double sum = 0;
  double worst = 0;
  for (int k = 1; k < 20; ++k) {
    std::string edited = v1;
    edited.insert(v1.find('\n', v1.size() * static_cast<size_t>(k) / 20) + 1, kLine);
    double p = 100.0 * static_cast<double>(newChunkBytes(v1, edited)) / (64.0 * 1024);
    sum += p;
    worst = std::max(worst, p);
  }
  std::printf("chunker: the same line at 19 places: mean %.1f%%, worst %.1f%% of 64 KiB\n",
              sum / 19, worst);
  CHECK(sum / 19 < 10.0);
}

TEST_CASE("an edit leaves the chunks before and after it alone") {
  const std::string v1 = program(64 * 1024, 99);
  std::string v2 = v1;
  size_t at = v1.find('\n', v1.size() / 3) + 1;
  v2.insert(at, kLine);
  Manifest a = buildManifest(bytesOf(v1));
  Manifest b = buildManifest(bytesOf(v2));
  // Every chunk ending well before the edit is identical, and the last chunks (shifted by the
  // line's length) are too.
  for (size_t i = 0; i < a.chunks.size() && a.chunks[i].offset + a.chunks[i].length + 64 < at;
       ++i) {
    CHECK(b.chunks[i] == a.chunks[i]);
  }
  CHECK(a.chunks.back().sha == b.chunks.back().sha);
  CHECK(b.chunks.back().offset == a.chunks.back().offset + kLine.size());
}
