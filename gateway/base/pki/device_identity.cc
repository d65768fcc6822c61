#include "gateway/base/pki/device_identity.h"

#include <string_view>

#include "gateway/base/names.h"

namespace impgate::pki {

namespace {

// The text of the subject's only entry of `nid`, if it is the only one, is a UTF8String,
// PrintableString or IA5String, and passes isValidDeviceId().
std::optional<std::string> singleNameEntry(const X509* cert, int nid) {
  if (!cert) {
    return std::nullopt;
  }
  const X509_NAME* subject = X509_get_subject_name(cert);
  int index = X509_NAME_get_index_by_NID(subject, nid, -1);
  if (index < 0 || X509_NAME_get_index_by_NID(subject, nid, index) >= 0) {
    return std::nullopt;
  }
  const ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
  // In these three types a valid name's bytes are its ASCII characters; other string types
  // (BMPString, UniversalString) use wide encodings and are refused rather than converted.
  switch (ASN1_STRING_type(value)) {
    case V_ASN1_UTF8STRING:
    case V_ASN1_PRINTABLESTRING:
    case V_ASN1_IA5STRING:
      break;
    default:
      return std::nullopt;
  }
  std::string_view text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
                        static_cast<std::size_t>(ASN1_STRING_length(value)));
  if (!isValidDeviceId(text)) {
    return std::nullopt;
  }
  return std::string(text);
}

}  // namespace

std::optional<std::string> deviceIdFromCertificate(const X509* cert) {
  return singleNameEntry(cert, NID_commonName);
}

std::optional<std::string> deviceGroupFromCertificate(const X509* cert) {
  return singleNameEntry(cert, NID_organizationalUnitName);
}

}  // namespace impgate::pki
