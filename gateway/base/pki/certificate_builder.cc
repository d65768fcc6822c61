#include "gateway/base/pki/certificate_builder.h"

#include <arpa/inet.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cassert>
#include <climits>
#include <cstring>

#include "gateway/base/pki/openssl_error.h"

namespace impgate::pki {
namespace {

constexpr const char* kAlwaysServerNames[] = {"localhost", "127.0.0.1", "::1"};

// Fills `serial` with 127 random bits: the top bit is cleared so the DER INTEGER is positive and
// fits the 20-octet limit of RFC 5280.
Status setRandomSerial(X509* cert) {
  unsigned char bytes[16];
  BignumPtr bn;
  do {
    if (RAND_bytes(bytes, sizeof bytes) != 1) {
      return opensslError("cannot draw a random serial number");
    }
    bytes[0] &= 0x7f;
    bn.reset(BN_bin2bn(bytes, sizeof bytes, nullptr));
    if (!bn) {
      return opensslError("cannot build a serial number");
    }
  } while (BN_is_zero(bn.get()));
  if (!BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert))) {
    return opensslError("cannot set the serial number");
  }
  return {};
}

Status setValidity(X509* cert, const CertificateSpec& spec) {
  if (spec.notAfter <= spec.notBefore) {
    return Error{ErrorCode::kInvalidArgument, "certificate validity ends before it starts"};
  }
  auto toTimeT = [](std::chrono::system_clock::time_point t) {
    return std::chrono::system_clock::to_time_t(t);
  };
  if (!ASN1_TIME_set(X509_getm_notBefore(cert), toTimeT(spec.notBefore)) ||
      !ASN1_TIME_set(X509_getm_notAfter(cert), toTimeT(spec.notAfter))) {
    return opensslError("cannot set the validity period");
  }
  return {};
}

Status addExtension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  X509ExtensionPtr ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value));
  if (!ext || !X509_add_ext(cert, ext.get(), -1)) {
    return opensslError(std::string("cannot add extension ") + OBJ_nid2sn(nid) + "=" + value);
  }
  return {};
}

Result<GeneralNamePtr> generalName(const std::string& name) {
  GeneralNamePtr gn(GENERAL_NAME_new());
  if (!gn) {
    return opensslError("cannot allocate a subject alternative name");
  }
  unsigned char ip[16];
  int ipLength = 0;
  if (inet_pton(AF_INET, name.c_str(), ip) == 1) {
    ipLength = 4;
  } else if (inet_pton(AF_INET6, name.c_str(), ip) == 1) {
    ipLength = 16;
  }
  ASN1_STRING* value = ASN1_STRING_type_new(ipLength ? V_ASN1_OCTET_STRING : V_ASN1_IA5STRING);
  bool set =
      value && (ipLength ? ASN1_STRING_set(value, ip, ipLength)
                         : ASN1_STRING_set(value, name.data(), static_cast<int>(name.size())));
  if (!set) {
    ASN1_STRING_free(value);
    return opensslError("cannot encode subject alternative name " + name);
  }
  GENERAL_NAME_set0_value(gn.get(), ipLength ? GEN_IPADD : GEN_DNS, value);
  return gn;
}

Status addSubjectAltNames(X509* cert, const std::vector<std::string>& extra) {
  std::vector<std::string> names(std::begin(kAlwaysServerNames), std::end(kAlwaysServerNames));
  for (const std::string& n : extra) {
    if (!isValidServerName(n)) {
      return Error{ErrorCode::kInvalidArgument,
                   "invalid server name '" + n + "': expected a DNS name or an IP address"};
    }
    if (std::find(names.begin(), names.end(), n) == names.end()) {
      names.push_back(n);
    }
  }
  GeneralNamesPtr list(sk_GENERAL_NAME_new_null());
  if (!list) {
    return opensslError("cannot allocate subject alternative names");
  }
  for (const std::string& n : names) {
    Result<GeneralNamePtr> gn = generalName(n);
    if (!gn) {
      return gn.error();
    }
    if (!sk_GENERAL_NAME_push(list.get(), gn->get())) {
      return opensslError("cannot add subject alternative name " + n);
    }
    (void)gn->release();  // the list owns it now
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, list.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return opensslError("cannot add subject alternative names");
  }
  return {};
}

Status addProfile(X509* cert, X509* issuerCert, const CertificateSpec& spec) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuerCert ? issuerCert : cert, cert, nullptr, nullptr, 0);

  struct Ext {
    int nid;
    const char* value;
  };
  std::vector<Ext> exts;
  switch (spec.role) {
    case CertificateRole::kFleetCa:
      // Devices and gateways are issued directly by the root: no intermediates, hence pathlen:0.
      exts = {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
              {NID_key_usage, "critical,keyCertSign,cRLSign"},
              {NID_subject_key_identifier, "hash"}};
      break;
    case CertificateRole::kGatewayServer:
      exts = {{NID_basic_constraints, "critical,CA:FALSE"},
              {NID_key_usage, "critical,digitalSignature"},
              {NID_ext_key_usage, "serverAuth"},
              {NID_subject_key_identifier, "hash"},
              {NID_authority_key_identifier, "keyid:always"}};
      break;
    case CertificateRole::kDeviceClient:
      exts = {{NID_basic_constraints, "critical,CA:FALSE"},
              {NID_key_usage, "critical,digitalSignature"},
              {NID_ext_key_usage, "clientAuth"},
              {NID_subject_key_identifier, "hash"},
              {NID_authority_key_identifier, "keyid:always"}};
      break;
  }
  for (const Ext& e : exts) {
    if (Status s = addExtension(cert, &ctx, e.nid, e.value); !s) {
      return s;
    }
  }
  if (spec.role == CertificateRole::kGatewayServer) {
    return addSubjectAltNames(cert, spec.serverNames);
  }
  return {};
}

bool isValidDnsLabel(std::string_view label) {
  if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
    return false;
  }
  return std::all_of(label.begin(), label.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
  });
}

}  // namespace

bool isValidServerName(std::string_view name) {
  std::string text(name);
  unsigned char ip[16];
  if (inet_pton(AF_INET, text.c_str(), ip) == 1 || inet_pton(AF_INET6, text.c_str(), ip) == 1) {
    return true;
  }
  if (name.empty() || name.size() > 253) {
    return false;
  }
  if (name.starts_with("*.")) {
    name.remove_prefix(2);
  }
  for (;;) {
    std::size_t dot = name.find('.');
    if (!isValidDnsLabel(name.substr(0, dot))) {
      return false;
    }
    if (dot == std::string_view::npos) {
      return true;
    }
    name.remove_prefix(dot + 1);
  }
}

Result<X509Ptr> buildCertificate(const CertificateSpec& spec, EVP_PKEY* subjectKey,
                                 const Issuer& issuer) {
  assert(issuer.key && "every certificate needs a signing key");
  assert((spec.role == CertificateRole::kFleetCa) == (issuer.cert == nullptr));
  if (spec.commonName.empty() || spec.commonName.size() > INT_MAX) {
    return Error{ErrorCode::kInvalidArgument, "certificate common name is empty or too long"};
  }
  X509Ptr cert(X509_new());
  if (!cert || !X509_set_version(cert.get(), X509_VERSION_3)) {
    return opensslError("cannot allocate a certificate");
  }
  if (Status s = setRandomSerial(cert.get()); !s) {
    return s.error();
  }
  if (Status s = setValidity(cert.get(), spec); !s) {
    return s.error();
  }
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (!spec.organizationalUnit.empty() &&
      (spec.organizationalUnit.size() > INT_MAX ||
       !X509_NAME_add_entry_by_NID(
           subject, NID_organizationalUnitName, MBSTRING_UTF8,
           reinterpret_cast<const unsigned char*>(spec.organizationalUnit.data()),
           static_cast<int>(spec.organizationalUnit.size()), -1, 0))) {
    return opensslError("cannot set organizational unit '" + spec.organizationalUnit + "'");
  }
  if (!X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
                                  reinterpret_cast<const unsigned char*>(spec.commonName.data()),
                                  static_cast<int>(spec.commonName.size()), -1, 0)) {
    return opensslError("cannot set common name '" + spec.commonName + "'");
  }
  X509_NAME* issuerName = issuer.cert ? X509_get_subject_name(issuer.cert) : subject;
  if (!X509_set_issuer_name(cert.get(), issuerName) || !X509_set_pubkey(cert.get(), subjectKey)) {
    return opensslError("cannot set issuer and public key");
  }
  if (Status s = addProfile(cert.get(), issuer.cert, spec); !s) {
    return s.error();
  }
  if (X509_sign(cert.get(), issuer.key, EVP_sha256()) <= 0) {
    return opensslError("cannot sign the certificate");
  }
  return cert;
}

}  // namespace impgate::pki
