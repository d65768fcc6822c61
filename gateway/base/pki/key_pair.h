// Key generation for every key the fleet uses: the CA, the gateway and each device hold an
// ECDSA P-256 key (small certificates, fast handshakes, supported by every TLS 1.3 stack).
#pragma once

#include "gateway/base/pki/openssl_ptr.h"
#include "gateway/base/pki/result.h"

namespace impgate::pki {

// A fresh P-256 key pair from OpenSSL's default random source.
Result<PkeyPtr> generateKeyPair();

}  // namespace impgate::pki
