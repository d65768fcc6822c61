// DeviceClient's side of code push (docs/protocol.md, "Code push"): CODE_OFFER in, chunks
// copied or fetched, verified, installed through the application's CodeStore, CODE_RESULT out.
// Runs on the client's loop thread like the rest of the client.
#include <algorithm>
#include <cassert>

#include "gateway/base/code/hex.h"
#include "gateway/base/pki/code_signing.h"
#include "gateway/device/device_client.h"

namespace impgate::device {

std::string_view codeEventKindName(CodeEvent::Kind kind) {
  switch (kind) {
    case CodeEvent::Kind::kOffered:
      return "offered";
    case CodeEvent::Kind::kDeferred:
      return "deferred";
    case CodeEvent::Kind::kInstalled:
      return "installed";
    case CodeEvent::Kind::kFailed:
      return "failed";
    case CodeEvent::Kind::kSuperseded:
      return "superseded";
  }
  return "unknown";
}

namespace {

// A str8 holds at most 255 bytes.
std::string clampReason(std::string reason) {
  if (reason.size() > protocol::kMaxStr8Length) reason.resize(protocol::kMaxStr8Length);
  return reason;
}

bool lessSha(const code::ManifestChunk& a, const code::ManifestChunk& b) {
  return a.sha < b.sha;
}

// The chunk of `sorted` (ordered by sha) with `sha` and `length`, or nullptr.
const code::ManifestChunk* findChunk(const std::vector<code::ManifestChunk>& sorted,
                                     const code::Sha256& sha, uint32_t length) {
  auto it = std::lower_bound(sorted.begin(), sorted.end(), code::ManifestChunk{sha, 0, 0}, lessSha);
  for (; it != sorted.end() && it->sha == sha; ++it) {
    if (it->length == length) return &*it;
  }
  return nullptr;
}

}  // namespace

std::string DeviceClient::helloCodeId() const {
  if (!codePush_) return options_.codeId;
  auto running = options_.codePush.store->runningCode();
  return running ? code::toHex(*running) : std::string();
}

void DeviceClient::sendCodeResult(const CodeOfferInfo& offer, protocol::CodeResultStatus status,
                                  const std::string& reason, CodeEvent::Kind kind) {
  CodeEvent event;
  event.kind = kind;
  event.offer = offer;
  event.reason = clampReason(reason);
  if (transfer_ && transfer_->offer.code == offer.code) {
    event.bytesFetched = transfer_->fetched;
    event.bytesCopied = transfer_->copied;
    transfer_.reset();
  }
  if (fd_ >= 0) sendFrame(protocol::CodeResult{offer.code, status, event.reason});
  if (handlers_.onCode) handlers_.onCode(event);
}

void DeviceClient::failCodeTransfer(const std::string& reason) {
  assert(transfer_);
  CodeOfferInfo offer = transfer_->offer;
  sendCodeResult(offer, protocol::CodeResultStatus::kFailed, reason, CodeEvent::Kind::kFailed);
}

void DeviceClient::onCodeOffer(const protocol::CodeOffer& o) {
  CodeOfferInfo info{o.code, o.size, o.deployment, o.mandatory};
  // Every offer starts a transfer afresh from what the store holds, also one of the code
  // being fetched (the partial stays in the store, so only what is missing is asked for). The
  // gateway forgets the GETs it has not answered when it sends an offer, so the count starts
  // over and late answers to them are ignored.
  transfer_.reset();
  getsInFlight_.clear();
  if (handlers_.onCode) {
    CodeEvent event;
    event.offer = info;
    handlers_.onCode(event);
    if (fd_ < 0) return;
  }
  CodeStore& store = *options_.codePush.store;
  auto running = store.runningCode();
  if (running && *running == o.code) {
    sendCodeResult(info, protocol::CodeResultStatus::kInstalled, "already running",
                   CodeEvent::Kind::kInstalled);
    return;
  }
  // The signature covers the hash and the size: code the fleet key did not sign is not even
  // fetched.
  if (!pki::verifyCode(options_.codePush.verifyKey.get(), o.code, o.size, o.signature)) {
    sendCodeResult(info, protocol::CodeResultStatus::kFailed, "bad signature",
                   CodeEvent::Kind::kFailed);
    return;
  }
  if (!o.mandatory && options_.codePush.deferUpdate) {
    auto reason = options_.codePush.deferUpdate(info);
    if (fd_ < 0) return;
    if (reason) {
      sendCodeResult(info, protocol::CodeResultStatus::kDeferred, *reason,
                     CodeEvent::Kind::kDeferred);
      return;
    }
  }

  auto t = std::make_unique<CodeTransfer>();
  t->offer = info;
  t->manifest.chunks.reserve(o.chunks.size());
  for (const protocol::CodeChunkRef& c : o.chunks) t->manifest.append(c.sha, c.length);
  t->state.assign(t->manifest.chunks.size(), CodeTransfer::kMissing);
  t->lastData = loop_.now();
  transfer_ = std::move(t);
  for (const auto& c : transfer_->manifest.chunks) {
    // One GET carries a whole chunk; the chunker makes none larger than 8 KiB.
    if (c.length > protocol::kMaxCodeData) {
      failCodeTransfer("chunk larger than " + std::to_string(protocol::kMaxCodeData) + " bytes");
      return;
    }
  }
  if (!copyLocalChunks()) return;
  pumpCodeGets();
}

bool DeviceClient::copyLocalChunks() {
  CodeTransfer& t = *transfer_;
  CodeStore& store = *options_.codePush.store;
  auto heldRanges = store.openPartial(t.offer.code, t.offer.size);
  if (!heldRanges) {
    failCodeTransfer(heldRanges.error().message);
    return false;
  }
  // What this partial already holds: every chunk that lies inside one verified range. The
  // ranges come from earlier offers of the same code, so they are normally whole chunks.
  std::vector<CodeRange> ranges = std::move(*heldRanges);
  std::sort(ranges.begin(), ranges.end(),
            [](const CodeRange& a, const CodeRange& b) { return a.offset < b.offset; });
  std::vector<CodeRange> merged;
  for (const CodeRange& r : ranges) {
    uint64_t end = uint64_t{r.offset} + r.length;
    if (!merged.empty() && r.offset <= uint64_t{merged.back().offset} + merged.back().length) {
      uint64_t last = uint64_t{merged.back().offset} + merged.back().length;
      merged.back().length = static_cast<uint32_t>(std::max(last, end) - merged.back().offset);
    } else {
      merged.push_back(r);
    }
  }
  std::vector<code::ManifestChunk> inPartial;  // held chunks of this code, sorted by sha
  for (std::size_t i = 0; i < t.manifest.chunks.size(); ++i) {
    const auto& c = t.manifest.chunks[i];
    auto it = std::upper_bound(merged.begin(), merged.end(), c.offset,
                               [](uint32_t off, const CodeRange& r) { return off < r.offset; });
    if (it == merged.begin()) continue;
    --it;
    if (uint64_t{c.offset} + c.length <= uint64_t{it->offset} + it->length) {
      t.state[i] = CodeTransfer::kHeld;
      ++t.held;
      t.copied += c.length;
      codeBytesCopied_ += c.length;
      inPartial.push_back(c);
    }
  }

  // Delta: chunks of the running code (and chunks repeated within this code) are copied.
  code::Manifest runningManifest = store.runningManifest();
  std::vector<code::ManifestChunk> inRunning = std::move(runningManifest.chunks);
  std::sort(inRunning.begin(), inRunning.end(), lessSha);
  std::sort(inPartial.begin(), inPartial.end(), lessSha);
  for (std::size_t i = 0; i < t.manifest.chunks.size(); ++i) {
    if (t.state[i] != CodeTransfer::kMissing) continue;
    const auto& c = t.manifest.chunks[i];
    const code::ManifestChunk* source = findChunk(inRunning, c.sha, c.length);
    bool fromRunning = source != nullptr;
    if (!source) source = findChunk(inPartial, c.sha, c.length);
    if (!source) continue;
    codeScratch_.resize(c.length);
    Status read = fromRunning ? store.readRunning(source->offset, codeScratch_)
                              : store.readPartial(t.offer.code, source->offset, codeScratch_);
    // A local copy that does not hash right (a damaged file) is fetched instead.
    if (!read || code::sha256(codeScratch_) != c.sha) continue;
    if (Status s = store.writePartial(t.offer.code, c.offset, codeScratch_); !s) {
      failCodeTransfer(s.error().message);
      return false;
    }
    if (Status s = store.markHeld(t.offer.code, {c.offset, c.length}); !s) {
      failCodeTransfer(s.error().message);
      return false;
    }
    t.state[i] = CodeTransfer::kHeld;
    ++t.held;
    t.copied += c.length;
    codeBytesCopied_ += c.length;
  }
  codeScratch_.clear();
  codeScratch_.shrink_to_fit();
  return true;
}

bool DeviceClient::pumpCodeGets() {
  CodeTransfer& t = *transfer_;
  const std::size_t n = t.manifest.chunks.size();
  while (getsInFlight_.size() < static_cast<std::size_t>(protocol::kMaxCodeGetsInFlight)) {
    while (t.cursor < n && t.state[t.cursor] != CodeTransfer::kMissing) ++t.cursor;
    if (t.cursor == n) break;
    // Consecutive missing chunks, whole, up to kMaxCodeData bytes in one GET.
    uint32_t offset = t.manifest.chunks[t.cursor].offset;
    uint32_t length = 0;
    for (std::size_t i = t.cursor; i < n && t.state[i] == CodeTransfer::kMissing &&
                                   length + t.manifest.chunks[i].length <= protocol::kMaxCodeData;
         ++i) {
      t.state[i] = CodeTransfer::kRequested;
      length += t.manifest.chunks[i].length;
    }
    getsInFlight_.push_back({t.offer.code, offset, length});
    sendFrame(protocol::CodeGet{t.offer.code, offset, length});
    if (fd_ < 0) return false;  // the write failed: drop() ended the transfer
  }
  if (t.held == n) {
    finishCodeTransfer();
    return false;
  }
  return true;
}

void DeviceClient::onCodeData(const protocol::CodeData& d) {
  if (d.data.empty()) {
    // The gateway withdrew this code: its unanswered GETs will not be answered.
    std::erase_if(getsInFlight_, [&](const CodeGetInFlight& g) { return g.code == d.code; });
    if (transfer_ && transfer_->offer.code == d.code) {
      CodeEvent event;
      event.kind = CodeEvent::Kind::kSuperseded;
      event.offer = transfer_->offer;
      event.bytesFetched = transfer_->fetched;
      event.bytesCopied = transfer_->copied;
      transfer_.reset();
      if (handlers_.onCode) handlers_.onCode(event);
    }
    return;
  }
  auto get = std::find_if(
      getsInFlight_.begin(), getsInFlight_.end(),
      [&](const CodeGetInFlight& g) { return g.code == d.code && g.offset == d.offset; });
  if (get == getsInFlight_.end()) return;  // not asked on this link, or asked before an offer
  const uint64_t askedEnd = uint64_t{get->offset} + get->length;
  getsInFlight_.erase(get);
  if (!transfer_ || transfer_->offer.code != d.code) return;  // for a transfer that ended
  CodeTransfer& t = *transfer_;
  t.lastData = loop_.now();
  t.fetched += d.data.size();
  codeBytesFetched_ += d.data.size();

  std::span<const uint8_t> data = d.data;
  std::vector<uint8_t> corrupted;
  if (corruptPending_) {
    corruptPending_ = false;
    corrupted.assign(data.begin(), data.end());
    corrupted[0] ^= 0x01;
    data = corrupted;
  }

  CodeStore& store = *options_.codePush.store;
  const uint64_t dataEnd = uint64_t{d.offset} + data.size();
  const std::size_t n = t.manifest.chunks.size();
  auto first =
      std::upper_bound(t.manifest.chunks.begin(), t.manifest.chunks.end(), d.offset,
                       [](uint32_t off, const code::ManifestChunk& c) { return off < c.offset; });
  std::size_t i = first == t.manifest.chunks.begin()
                      ? 0
                      : static_cast<std::size_t>(first - t.manifest.chunks.begin()) - 1;
  bool gained = false;
  bool shortAnswer = false;
  for (; i < n && t.manifest.chunks[i].offset < std::max(dataEnd, askedEnd); ++i) {
    const auto& c = t.manifest.chunks[i];
    if (t.state[i] == CodeTransfer::kHeld) continue;
    const uint64_t chunkEnd = uint64_t{c.offset} + c.length;
    if (c.offset >= d.offset && chunkEnd <= dataEnd) {
      auto bytes = data.subspan(c.offset - d.offset, c.length);
      if (code::sha256(bytes) != c.sha) {
        failCodeTransfer("corrupt chunk " + code::toHex(c.sha));
        return;
      }
      if (Status s = store.writePartial(t.offer.code, c.offset, bytes); !s) {
        failCodeTransfer(s.error().message);
        return;
      }
      if (Status s = store.markHeld(t.offer.code, {c.offset, c.length}); !s) {
        failCodeTransfer(s.error().message);
        return;
      }
      t.state[i] = CodeTransfer::kHeld;
      ++t.held;
      gained = true;
    } else if (t.state[i] == CodeTransfer::kRequested && c.offset >= d.offset &&
               chunkEnd <= askedEnd) {
      // Asked for by this GET but not in its answer: ask again.
      t.state[i] = CodeTransfer::kMissing;
      t.cursor = std::min(t.cursor, i);
      shortAnswer = true;
    }
  }
  if (shortAnswer && !gained) {
    // A gateway that answers without a whole chunk would make the device ask forever.
    failCodeTransfer("CODE_DATA at " + std::to_string(d.offset) + " holds no whole chunk");
    return;
  }
  pumpCodeGets();
}

void DeviceClient::checkCodeStall() {
  if (!transfer_ || getsInFlight_.empty()) return;
  auto waited = loop_.now() - transfer_->lastData;
  if (waited >= options_.codePush.stallTimeout) {
    failCodeTransfer(
        "transfer stalled: no CODE_DATA for " +
        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(waited).count()) + " s");
  }
}

void DeviceClient::finishCodeTransfer() {
  CodeTransfer& t = *transfer_;
  CodeStore& store = *options_.codePush.store;
  code::Sha256Stream hash;
  std::vector<uint8_t> piece;
  for (uint32_t offset = 0; offset < t.offer.size;) {
    piece.resize(std::min<uint32_t>(t.offer.size - offset, protocol::kMaxCodeData));
    if (Status s = store.readPartial(t.offer.code, offset, piece); !s) {
      failCodeTransfer(s.error().message);
      return;
    }
    hash.update(piece);
    offset += static_cast<uint32_t>(piece.size());
  }
  if (hash.finish() != t.offer.code) {
    // Every chunk matched its hash yet the whole does not: the chunk list lied, or the
    // partial was damaged. Start over next time.
    store.discardPartial(t.offer.code);
    failCodeTransfer("hash mismatch");
    return;
  }
  if (Status s = store.install(t.offer.code, t.manifest); !s) {
    failCodeTransfer("install failed: " + s.error().message);
    return;
  }
  CodeOfferInfo offer = t.offer;
  sendCodeResult(offer, protocol::CodeResultStatus::kInstalled, "", CodeEvent::Kind::kInstalled);
}

}  // namespace impgate::device
