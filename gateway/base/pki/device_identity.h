// Which device a verified client certificate speaks for, and the group it was enrolled in. The
// gateway calls this once per connection, after the TLS handshake has verified the chain against
// the fleet CA; the answer is the only device id that connection may act as.
#pragma once

#include <openssl/x509.h>

#include <optional>
#include <string>

namespace impgate::pki {

// The subject's CN, if the subject has exactly one CN, it is a UTF8String, PrintableString or
// IA5String, and its text passes isValidDeviceId(). Anything else is nullopt: a certificate
// that could name two devices, or a name that would break a topic, names none.
// Cheap: no allocation beyond the returned string.
std::optional<std::string> deviceIdFromCertificate(const X509* cert);

// The device's group as enrolled (`impctl device enroll --group`): the subject's OU, by the
// same rules as the CN (exactly one OU, of those string types, passing the device-id name
// rules), else nullopt. Certificates issued before groups were written carry no OU; a
// verified group assignment on the bus overrides this, and "default" applies when neither.
std::optional<std::string> deviceGroupFromCertificate(const X509* cert);

}  // namespace impgate::pki
