#include "gateway/base/pki/openssl_error.h"

#include <openssl/err.h>

#include <string>

namespace impgate::pki {

Error opensslError(std::string_view context) {
  std::string message(context);
  bool first = true;
  while (unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    message += first ? ": " : "; ";
    message += buf;
    first = false;
  }
  if (first) {
    message += ": OpenSSL reported no reason";
  }
  return Error{ErrorCode::kCrypto, std::move(message)};
}

}  // namespace impgate::pki
