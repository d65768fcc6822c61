#include "gateway/base/pki/device_identity.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "gateway/base/pki/key_pair.h"
#include "gateway/base/pki/openssl_ptr.h"

using namespace impgate::pki;

namespace {

struct NameEntry {
  int nid;
  std::string value;
  int type = MBSTRING_UTF8;  // or a V_ASN1_* string type to force the encoding
};

// A self-signed certificate whose subject has exactly `entries`, in order.
X509Ptr certWithSubject(const std::vector<NameEntry>& entries) {
  PkeyPtr key = std::move(generateKeyPair()).value();
  X509Ptr cert(X509_new());
  REQUIRE(cert);
  X509_NAME* name = X509_get_subject_name(cert.get());
  for (const NameEntry& e : entries) {
    REQUIRE(X509_NAME_add_entry_by_NID(name, e.nid, e.type,
                                       reinterpret_cast<const unsigned char*>(e.value.data()),
                                       static_cast<int>(e.value.size()), -1, 0) == 1);
  }
  REQUIRE(X509_set_issuer_name(cert.get(), name) == 1);
  REQUIRE(X509_set_pubkey(cert.get(), key.get()) == 1);
  REQUIRE(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0);
  return cert;
}

}  // namespace

TEST_CASE("the device id is the subject's single valid CN") {
  auto cert = certWithSubject({{NID_organizationName, "acme"}, {NID_commonName, "imp-0001"}});
  CHECK(deviceIdFromCertificate(cert.get()) == "imp-0001");

  auto printable = certWithSubject({{NID_commonName, "imp-2", V_ASN1_PRINTABLESTRING}});
  CHECK(deviceIdFromCertificate(printable.get()) == "imp-2");
}

TEST_CASE("a CN that is not a valid device id names no device") {
  for (const char* bad : {"a/b", "a+b", "#", ".hidden", "with space"}) {
    auto cert = certWithSubject({{NID_commonName, bad}});
    CHECK_FALSE(deviceIdFromCertificate(cert.get()).has_value());
  }
  auto nul = certWithSubject({{NID_commonName, std::string("imp\0x", 5), V_ASN1_UTF8STRING}});
  CHECK_FALSE(deviceIdFromCertificate(nul.get()).has_value());
}

TEST_CASE("two CNs, no CN or a wide string type name no device") {
  auto two = certWithSubject({{NID_commonName, "imp-1"}, {NID_commonName, "imp-2"}});
  CHECK_FALSE(deviceIdFromCertificate(two.get()).has_value());

  auto none = certWithSubject({{NID_organizationName, "imp-1"}});
  CHECK_FALSE(deviceIdFromCertificate(none.get()).has_value());

  // "imp" as UTF-16: the bytes are not the id's characters.
  auto bmp = certWithSubject({{NID_commonName, std::string("\0i\0m\0p", 6), V_ASN1_BMPSTRING}});
  CHECK_FALSE(deviceIdFromCertificate(bmp.get()).has_value());

  CHECK_FALSE(deviceIdFromCertificate(nullptr).has_value());
}

TEST_CASE("the device group is the subject's single valid OU") {
  auto cert = certWithSubject({{NID_organizationalUnitName, "kitchen"}, {NID_commonName, "imp-1"}});
  CHECK(deviceGroupFromCertificate(cert.get()) == "kitchen");
  CHECK(deviceIdFromCertificate(cert.get()) == "imp-1");

  auto none = certWithSubject({{NID_commonName, "imp-1"}});
  CHECK_FALSE(deviceGroupFromCertificate(none.get()).has_value());
  auto two = certWithSubject({{NID_organizationalUnitName, "a"},
                              {NID_organizationalUnitName, "b"},
                              {NID_commonName, "imp-1"}});
  CHECK_FALSE(deviceGroupFromCertificate(two.get()).has_value());
  for (const char* bad : {"a/b", "+", ".hidden", "with space"}) {
    auto c = certWithSubject({{NID_organizationalUnitName, bad}, {NID_commonName, "imp-1"}});
    CHECK_FALSE(deviceGroupFromCertificate(c.get()).has_value());
  }
  auto wide =
      certWithSubject({{NID_organizationalUnitName, std::string("\0k", 2), V_ASN1_BMPSTRING},
                       {NID_commonName, "imp-1"}});
  CHECK_FALSE(deviceGroupFromCertificate(wide.get()).has_value());
  CHECK_FALSE(deviceGroupFromCertificate(nullptr).has_value());
}
