#include "gateway/base/pki/certificate_info.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>

#include <ctime>

#include "gateway/base/pki/openssl_ptr.h"

namespace impgate::pki {

std::string serialHex(const X509* cert) {
  BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (!bn) {
    return {};
  }
  char* hex = BN_bn2hex(bn.get());
  if (!hex) {
    return {};
  }
  std::string out(hex);
  OPENSSL_free(hex);
  return out;
}

std::optional<std::int64_t> notAfterMs(const X509* cert) {
  std::tm tm{};
  if (!ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm)) {
    return std::nullopt;
  }
  return static_cast<std::int64_t>(timegm(&tm)) * 1000;
}

std::string commonName(const X509* cert) {
  const X509_NAME* name = X509_get_subject_name(cert);
  int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) {
    return {};
  }
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) {
    return {};
  }
  std::string out(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

}  // namespace impgate::pki
