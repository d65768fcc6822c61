#include "gateway/device/file_code_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "gateway/base/code/hex.h"

namespace impgate::device {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kPartialPrefix = "partial-";

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_;
};

Error ioError(const std::string& what, const fs::path& path) {
  return Error{ErrorCode::kStorage, what + " " + path.string() + ": " + std::strerror(errno)};
}

Status writeAll(int fd, std::span<const uint8_t> bytes, uint64_t offset, const fs::path& path) {
  while (!bytes.empty()) {
    ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ioError("cannot write", path);
    bytes = bytes.subspan(static_cast<std::size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return {};
}

Status readAll(const fs::path& path, uint64_t offset, std::span<uint8_t> out) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ioError("cannot open", path);
  while (!out.empty()) {
    ssize_t n = ::pread(fd.get(), out.data(), out.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ioError("cannot read", path);
    if (n == 0) return Error{ErrorCode::kStorage, "cannot read " + path.string() + ": too short"};
    out = out.subspan(static_cast<std::size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return {};
}

Status syncPath(const fs::path& path, int flags) {
  Fd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (!fd || ::fsync(fd.get()) != 0) return ioError("cannot sync", path);
  return {};
}

// Writes `text` to `path` through `path`.tmp: written, synced, renamed, directory synced.
Status writeFileAtomically(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) return ioError("cannot create", tmp);
    auto bytes =
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size());
    if (Status s = writeAll(fd.get(), bytes, 0, tmp); !s) return s;
    if (::fsync(fd.get()) != 0) return ioError("cannot sync", tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ioError("cannot rename to", path);
  return syncPath(path.parent_path(), O_RDONLY | O_DIRECTORY);
}

std::string manifestText(const code::Sha256& sha, const code::Manifest& manifest) {
  std::string text = code::toHex(sha) + " " + std::to_string(manifest.totalSize()) + "\n";
  for (const auto& c : manifest.chunks) {
    text += code::toHex(c.sha) + " " + std::to_string(c.length) + "\n";
  }
  return text;
}

// The manifest in `path` if it names `sha` and adds up to `size`; nullopt otherwise.
std::optional<code::Manifest> readManifest(const fs::path& path, const code::Sha256& sha,
                                           uint64_t size) {
  std::ifstream in(path);
  std::string hex;
  uint64_t total = 0;
  if (!(in >> hex >> total) || hex != code::toHex(sha) || total != size) return std::nullopt;
  code::Manifest manifest;
  uint64_t length = 0;
  while (in >> hex >> length) {
    auto chunk = code::sha256FromHex(hex);
    if (!chunk || length == 0 || manifest.totalSize() + length > size) return std::nullopt;
    manifest.append(*chunk, static_cast<uint32_t>(length));
  }
  if (!in.eof() || manifest.totalSize() != size) return std::nullopt;
  return manifest;
}

}  // namespace

Result<std::unique_ptr<FileCodeStore>> FileCodeStore::open(const fs::path& stateDir) {
  std::error_code ec;
  fs::path dir = stateDir / "code";
  fs::create_directories(dir, ec);
  if (ec) return Error{ErrorCode::kStorage, "cannot create " + dir.string() + ": " + ec.message()};
  fs::permissions(stateDir, fs::perms::owner_all, ec);
  std::unique_ptr<FileCodeStore> store(new FileCodeStore(dir));
  if (Status s = store->loadCurrent(); !s) return s.error();
  return store;
}

Status FileCodeStore::loadCurrent() {
  running_.reset();
  runningSize_ = 0;
  std::error_code ec;
  fs::remove(dir_ / "current.manifest.tmp", ec);  // an install that stopped before renaming it
  fs::path current = dir_ / "current";
  if (!fs::exists(current, ec)) return {};
  uint64_t size = fs::file_size(current, ec);
  if (ec)
    return Error{ErrorCode::kStorage, "cannot read " + current.string() + ": " + ec.message()};
  if (size == 0 || size > UINT32_MAX) {
    return Error{ErrorCode::kStorage, current.string() + " has an impossible size"};
  }
  std::vector<uint8_t> bytes(size);
  if (Status s = readAll(current, 0, bytes); !s) return s;
  code::Sha256 sha = code::sha256(bytes);
  fs::path manifestPath = dir_ / "current.manifest";
  if (!readManifest(manifestPath, sha, size)) {
    // Missing, damaged, or left from the code before an install that stopped between its two
    // renames: the chunker rebuilds it from the bytes.
    if (Status s = writeFileAtomically(manifestPath, manifestText(sha, code::buildManifest(bytes)));
        !s) {
      return s;
    }
  }
  running_ = sha;
  runningSize_ = static_cast<uint32_t>(size);
  return {};
}

code::Manifest FileCodeStore::runningManifest() {
  if (!running_) return {};
  auto manifest = readManifest(dir_ / "current.manifest", *running_, runningSize_);
  return manifest ? std::move(*manifest) : code::Manifest{};
}

Status FileCodeStore::readRunning(uint32_t offset, std::span<uint8_t> out) {
  if (!running_) return Error{ErrorCode::kStorage, "no running code"};
  return readAll(dir_ / "current", offset, out);
}

fs::path FileCodeStore::partialPath(const code::Sha256& code) const {
  return dir_ / (std::string(kPartialPrefix) + code::toHex(code));
}

fs::path FileCodeStore::heldPath(const code::Sha256& code) const {
  fs::path p = partialPath(code);
  p += ".held";
  return p;
}

Result<std::vector<CodeRange>> FileCodeStore::openPartial(const code::Sha256& code, uint32_t size) {
  fs::path path = partialPath(code);
  fs::path held = heldPath(code);
  std::string keep = path.filename().string();
  std::error_code ec;
  // One partial at a time: a new offer's download replaces an older one's.
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    std::string name = entry.path().filename().string();
    if (name.starts_with(kPartialPrefix) && name != keep && name != keep + ".held") {
      fs::remove(entry.path(), ec);
    }
  }
  std::vector<CodeRange> ranges;
  if (fs::exists(path, ec) && fs::file_size(path, ec) == size && !ec) {
    std::ifstream in(held);
    uint64_t offset = 0, length = 0;
    while (in >> offset >> length) {
      if (length > 0 && offset + length <= size) {
        ranges.push_back({static_cast<uint32_t>(offset), static_cast<uint32_t>(length)});
      }
    }
    return ranges;
  }
  fs::remove(held, ec);
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return ioError("cannot create", path);
  if (::ftruncate(fd.get(), size) != 0) return ioError("cannot size", path);
  return ranges;
}

Status FileCodeStore::writePartial(const code::Sha256& code, uint32_t offset,
                                   std::span<const uint8_t> bytes) {
  fs::path path = partialPath(code);
  Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return ioError("cannot open", path);
  return writeAll(fd.get(), bytes, offset, path);
}

Status FileCodeStore::readPartial(const code::Sha256& code, uint32_t offset,
                                  std::span<uint8_t> out) {
  return readAll(partialPath(code), offset, out);
}

Status FileCodeStore::markHeld(const code::Sha256& code, CodeRange range) {
  fs::path path = heldPath(code);
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd) return ioError("cannot open", path);
  std::string line = std::to_string(range.offset) + " " + std::to_string(range.length) + "\n";
  if (::write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    return ioError("cannot write", path);
  }
  return {};
}

void FileCodeStore::discardPartial(const code::Sha256& code) {
  std::error_code ec;
  fs::remove(partialPath(code), ec);
  fs::remove(heldPath(code), ec);
}

Status FileCodeStore::install(const code::Sha256& code, const code::Manifest& manifest) {
  fs::path partial = partialPath(code);
  fs::path current = dir_ / "current";
  fs::path manifestPath = dir_ / "current.manifest";
  fs::path manifestTmp = dir_ / "current.manifest.tmp";
  if (Status s = syncPath(partial, O_RDONLY); !s) return s;
  {
    std::string text = manifestText(code, manifest);
    Fd fd(::open(manifestTmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) return ioError("cannot create", manifestTmp);
    auto bytes =
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size());
    if (Status s = writeAll(fd.get(), bytes, 0, manifestTmp); !s) return s;
    if (::fsync(fd.get()) != 0) return ioError("cannot sync", manifestTmp);
  }
  if (faultHook && !faultHook("before-rename")) {
    return Error{ErrorCode::kStorage, "install stopped before the rename (fault hook)"};
  }
  // The one step that switches the running code.
  if (::rename(partial.c_str(), current.c_str()) != 0) return ioError("cannot rename to", current);
  running_ = code;
  runningSize_ = static_cast<uint32_t>(manifest.totalSize());
  if (Status s = syncPath(dir_, O_RDONLY | O_DIRECTORY); !s) return s;
  if (::rename(manifestTmp.c_str(), manifestPath.c_str()) != 0) {
    return ioError("cannot rename to", manifestPath);
  }
  std::error_code ec;
  fs::remove(heldPath(code), ec);
  return syncPath(dir_, O_RDONLY | O_DIRECTORY);
}

}  // namespace impgate::device
