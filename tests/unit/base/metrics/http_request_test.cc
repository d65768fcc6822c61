#include "gateway/base/metrics/http_request.h"

#include <catch2/catch.hpp>

#include <string>

using impgate::metrics::parseRequestLine;
using impgate::metrics::requestHeadLength;

TEST_CASE("the end of a request head is found with CRLF or bare LF") {
  CHECK_FALSE(requestHeadLength("GET /metrics HTTP/1.1\r\nHost: x\r\n"));
  CHECK(requestHeadLength("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") == 34u);
  CHECK(requestHeadLength("GET / HTTP/1.0\n\nextra") == 16u);
  CHECK_FALSE(requestHeadLength(""));
}

TEST_CASE("request lines are parsed") {
  auto r = parseRequestLine("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
  REQUIRE(r);
  CHECK(r->method == "GET");
  CHECK(r->path == "/metrics");
  CHECK(r->version == "HTTP/1.1");
  auto post = parseRequestLine("POST /metrics HTTP/1.0\n\n");
  REQUIRE(post);
  CHECK(post->method == "POST");
}

TEST_CASE("malformed request lines are refused") {
  const std::string nul("GET /\0 HTTP/1.1\r\n", 17);
  const std::string tls("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", 12);
  const std::string_view cases[] = {"GET /metrics\r\n",
                                    "GET  /metrics HTTP/1.1\r\n",
                                    "GET metrics HTTP/1.1\r\n",
                                    "GET /metrics HTTP/2\r\n",
                                    "G(T /metrics HTTP/1.1\r\n",
                                    " /metrics HTTP/1.1\r\n",
                                    "GET /met rics HTTP/1.1\r\n",
                                    nul,
                                    tls};
  for (std::string_view bad : cases) {
    INFO(bad);
    CHECK_FALSE(parseRequestLine(bad));
  }
}
