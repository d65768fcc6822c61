#include "gateway/base/pki/key_pair.h"

#include "gateway/base/pki/openssl_error.h"

namespace impgate::pki {

Result<PkeyPtr> generateKeyPair() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) {
    return opensslError("cannot generate a P-256 key");
  }
  return key;
}

}  // namespace impgate::pki
