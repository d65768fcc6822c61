// How key and certificate files reach the disk: never half-written (written to a temporary file
// beside the target, synced, then renamed or linked into place), created with their final mode
// (0600 for keys) so a key is never readable by others even for a moment, inside 0700
// directories.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "gateway/base/pki/result.h"

namespace impgate::pki {

enum class Replace {
  kNo,   // fail with ErrorCode::kAlreadyExists if the target exists (checked atomically)
  kYes,  // atomically replace whatever is there
};

// Creates `dir` with mode 0700 (its missing parents with the default mode). An existing
// directory is accepted as it is; an existing non-directory is an error.
Status makePrivateDirectory(const std::filesystem::path& dir);

Status writeFileAtomically(const std::filesystem::path& path, std::string_view contents,
                           mode_t mode, Replace replace);

// The whole file. A missing file is ErrorCode::kNotFound, other failures ErrorCode::kIo.
Result<std::string> readWholeFile(const std::filesystem::path& path);

}  // namespace impgate::pki
