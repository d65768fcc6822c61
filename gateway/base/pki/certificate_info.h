// Reads the facts about a certificate that the registry records and operators compare.
#pragma once

#include <openssl/x509.h>

#include <cstdint>
#include <optional>
#include <string>

namespace impgate::pki {

// Upper-case hex without leading zeros, as `openssl x509 -noout -serial` prints it.
std::string serialHex(const X509* cert);

// notAfter as unix milliseconds; nullopt if the field cannot be read.
std::optional<std::int64_t> notAfterMs(const X509* cert);

// The subject CN as text (empty if there is none); for display, not for identity decisions.
std::string commonName(const X509* cert);

}  // namespace impgate::pki
