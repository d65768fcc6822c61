#include "gateway/base/pki/credential_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace impgate::pki {
namespace {

Error ioError(std::string_view what, const std::filesystem::path& path, int err) {
  return Error{err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
               std::string(what) + " " + path.string() + ": " + std::strerror(err)};
}

// Closes the descriptor and removes the temporary file unless it was handed over.
class TempFile {
 public:
  TempFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~TempFile() {
    closeFd();
    if (!path_.empty()) {
      ::unlink(path_.c_str());
    }
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // The file now lives under its final name; nothing left to remove.
  void keep() { path_.clear(); }
  int closeFd() {
    int rc = fd_ >= 0 ? ::close(fd_) : 0;
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
  std::string path_;
};

Status writeAll(int fd, std::string_view data, const std::filesystem::path& target) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return ioError("cannot write", target, errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

// Makes the new directory entry durable; failure here is not worth failing the write for.
void syncDirectory(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

Status makePrivateDirectory(const std::filesystem::path& dir) {
  std::error_code ec;
  if (dir.has_parent_path() && !std::filesystem::exists(dir.parent_path(), ec)) {
    std::filesystem::create_directories(dir.parent_path(), ec);
    if (ec) {
      return Error{ErrorCode::kIo,
                   "cannot create " + dir.parent_path().string() + ": " + ec.message()};
    }
  }
  if (::mkdir(dir.c_str(), 0700) == 0) {
    return {};
  }
  int err = errno;
  if (err == EEXIST) {
    if (std::filesystem::is_directory(dir, ec)) {
      return {};
    }
    return Error{ErrorCode::kIo, dir.string() + " exists and is not a directory"};
  }
  return ioError("cannot create directory", dir, err);
}

Status writeFileAtomically(const std::filesystem::path& path, std::string_view contents,
                           mode_t mode, Replace replace) {
  std::string tmpl = path.string() + ".tmp-XXXXXX";
  int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);  // created 0600: never wider than the target
  if (fd < 0) {
    return ioError("cannot create a file beside", path, errno);
  }
  TempFile tmp(fd, tmpl);
  if (::fchmod(tmp.fd(), mode) != 0) {
    return ioError("cannot set the mode of", path, errno);
  }
  if (Status s = writeAll(tmp.fd(), contents, path); !s) {
    return s;
  }
  if (::fsync(tmp.fd()) != 0) {
    return ioError("cannot sync", path, errno);
  }
  if (tmp.closeFd() != 0) {
    return ioError("cannot write", path, errno);
  }
  if (replace == Replace::kYes) {
    if (::rename(tmp.path().c_str(), path.c_str()) != 0) {
      return ioError("cannot replace", path, errno);
    }
    tmp.keep();
  } else if (::link(tmp.path().c_str(), path.c_str()) != 0) {
    // link() fails if the target exists, so two writers cannot both "create" the file.
    int err = errno;
    if (err == EEXIST) {
      return Error{ErrorCode::kAlreadyExists, path.string() + " already exists"};
    }
    return ioError("cannot create", path, err);
  }
  // After link() the temporary name is a second link to the file; ~TempFile removes it.
  syncDirectory(path.parent_path());
  return {};
}

Result<std::string> readWholeFile(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return ioError("cannot read", path, errno);
  }
  std::string data;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      int err = errno;
      ::close(fd);
      return ioError("cannot read", path, err);
    }
    if (n == 0) {
      break;
    }
    data.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return data;
}

}  // namespace impgate::pki
