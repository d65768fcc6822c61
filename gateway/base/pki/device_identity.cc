#include "gateway/base/pki/device_identity.h"

#include <string_view>

#include "gateway/base/names.h"

namespace impgate::pki {

std::optional<std::string> deviceIdFromCertificate(const X509* cert) {
  if (!cert) {
    return std::nullopt;
  }
  const X509_NAME* subject = X509_get_subject_name(cert);
  int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index < 0 || X509_NAME_get_index_by_NID(subject, NID_commonName, index) >= 0) {
    return std::nullopt;
  }
  const ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
  // In these three types a valid id's bytes are its ASCII characters; other string types
  // (BMPString, UniversalString) use wide encodings and are refused rather than converted.
  switch (ASN1_STRING_type(cn)) {
    case V_ASN1_UTF8STRING:
    case V_ASN1_PRINTABLESTRING:
    case V_ASN1_IA5STRING:
      break;
    default:
      return std::nullopt;
  }
  std::string_view id(reinterpret_cast<const char*>(ASN1_STRING_get0_data(cn)),
                      static_cast<std::size_t>(ASN1_STRING_length(cn)));
  if (!isValidDeviceId(id)) {
    return std::nullopt;
  }
  return std::string(id);
}

}  // namespace impgate::pki
