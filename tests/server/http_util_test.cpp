#include "server/http_util.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>

namespace fls::server {
namespace {

TEST(RepairRequestLine, SpacesInsideTheTargetBecomePercent20AndTheRestIsUntouched) {
  struct Row {
    std::string line;
    std::optional<std::string> repaired;
  };
  const Row rows[] = {
      {"GET /Patient?name=a b HTTP/1.1", "GET /Patient?name=a%20b HTTP/1.1"},
      {"GET /Patient?name=Jean  Paul&given=x y HTTP/1.1",
       "GET /Patient?name=Jean%20%20Paul&given=x%20y HTTP/1.1"},
      {"GET /a b?x=HTTP/1.1 HTTP/1.0",
       "GET /a%20b?x=HTTP/1.1 HTTP/1.0"},  // the last " HTTP/" is the version
      {"GET /Patient?identifier=urn:oid:1.2|123 HTTP/1.1", std::nullopt},  // nothing to repair
      {"GET /Patient HTTP/1.1", std::nullopt},
      {"NONSENSE", std::nullopt},  // left to the parser
      {"GET  HTTP/1.1", std::nullopt},
      {"", std::nullopt},
  };
  for (const auto& row : rows) EXPECT_EQ(RepairRequestLine(row.line), row.repaired) << row.line;
}

TEST(SafeRequestId, KeepsSafeClientIdsAndReplacesTheRest) {
  EXPECT_EQ(SafeRequestId("abc-123_X.9"), "abc-123_X.9");
  EXPECT_EQ(SafeRequestId(std::string(64, 'a')), std::string(64, 'a'));
  for (std::string bad :
       {std::string(), std::string(65, 'a'), std::string("a b"), std::string("a\r\nSet-Cookie: x"),
        std::string("<script>"), std::string("caf\xC3\xA9")}) {
    std::string id = SafeRequestId(bad);
    EXPECT_NE(id, bad);
    EXPECT_EQ(id.size(), 36u) << "a UUID";
  }
}

TEST(RawHeaderValue, FindsAHeaderInUnparsedBytes) {
  std::string raw = "GET / HTTP/1.1\r\nHost: a\r\nx-request-ID:  abc-1 \r\nX-Big: aaaa";
  EXPECT_EQ(RawHeaderValue(raw, "x-request-id"), "abc-1");
  EXPECT_EQ(RawHeaderValue(raw, "host"), "a");
  EXPECT_EQ(RawHeaderValue(raw, "cookie"), "");
  EXPECT_EQ(RawHeaderValue("GET / HTTP/1.1\r\n\r\nX-Request-Id: body", "x-request-id"), "")
      << "not past the header";
  EXPECT_EQ(RawHeaderValue("", "x-request-id"), "");
}

TEST(SafeHost, OnlyHostCharacters) {
  EXPECT_TRUE(SafeHost("fls.example.org:8443"));
  EXPECT_TRUE(SafeHost("[::1]:8080"));
  EXPECT_FALSE(SafeHost(""));
  EXPECT_FALSE(SafeHost("evil.org/\"><script>"));
  EXPECT_FALSE(SafeHost(std::string(256, 'a')));
}

TEST(AcceptsGzip, ReadsCodingsAndQualities) {
  struct Row {
    const char* header;
    bool gzip;
  };
  const Row rows[] = {
      {"gzip", true},
      {"gzip, deflate, br", true},
      {"deflate, GZIP;q=0.5", true},
      {"x-gzip", true},
      {"*", true},
      {"br;q=1.0, *;q=0.1", true},
      {"gzip;q=0", false},
      {"gzip;q=0.000", false},
      {"gzip; q=0, *", false},  // an explicit refusal beats the wildcard
      {"*;q=0", false},
      {"identity", false},
      {"deflate, br", false},
      {"", false},
      {"gzip;q=abc", false},
  };
  for (const auto& row : rows) EXPECT_EQ(AcceptsGzip(row.header), row.gzip) << row.header;
}

std::string Gunzip(const std::string& in) {
  z_stream zs{};
  inflateInit2(&zs, 15 + 16);
  std::string out(in.size() * 20 + 1024, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = inflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  inflateEnd(&zs);
  return rc == Z_STREAM_END ? out : "<inflate failed>";
}

TEST(Gzip, RoundTripsAndShrinksJson) {
  std::string json = "{\"resourceType\":\"Bundle\",\"entry\":[";
  for (int i = 0; i < 200; ++i)
    json += "{\"resource\":{\"resourceType\":\"Patient\",\"id\":\"" + std::to_string(i) + "\"}},";
  json += "{}]}";
  std::string z = Gzip(json);
  EXPECT_EQ(static_cast<unsigned char>(z[0]), 0x1f) << "gzip magic";
  EXPECT_EQ(static_cast<unsigned char>(z[1]), 0x8b);
  EXPECT_LT(z.size(), json.size() / 5);
  EXPECT_EQ(Gunzip(z), json);
  EXPECT_EQ(Gunzip(Gzip("")), "");
}

TEST(CorsPolicy, ListedOriginsOrAny) {
  CorsPolicy none("");
  EXPECT_FALSE(none.enabled());
  EXPECT_FALSE(none.Allows("https://app.example.org"));
  CorsPolicy some(" https://app.example.org/ , http://localhost:5173");
  EXPECT_TRUE(some.Allows("https://app.example.org"))
      << "a trailing slash in the setting is ignored";
  EXPECT_TRUE(some.Allows("http://localhost:5173"));
  EXPECT_FALSE(some.Allows("https://app.example.org.evil.com"));
  EXPECT_FALSE(some.Allows("https://APP.example.org")) << "origins compare exactly";
  CorsPolicy any("*");
  EXPECT_TRUE(any.Allows("https://anything.org"));
  EXPECT_FALSE(any.Allows("null")) << "sandboxed documents and files get nothing";
  EXPECT_FALSE(any.Allows("https://a.org\r\nX: y"));
}

TEST(SafeHeaderList, EchoesTokensOnly) {
  EXPECT_EQ(SafeHeaderList("content-type, authorization"), "content-type, authorization");
  EXPECT_EQ(SafeHeaderList("content-type\r\nX-Evil: 1"), "");
  EXPECT_EQ(SafeHeaderList(std::string(2000, 'a')), "");
}

}  // namespace
}  // namespace fls::server

namespace fls::server {
namespace {

TEST(PercentEncode, UnreservedKeptTheRestEncoded) {
  EXPECT_EQ(PercentEncode("a-Z.0_~"), "a-Z.0_~");
  EXPECT_EQ(PercentEncode("s3cret+/with:odd chars"), "s3cret%2B%2Fwith%3Aodd%20chars");
  EXPECT_EQ(PercentEncode("/app/work list?x=1", "/"), "/app/work%20list%3Fx%3D1");
  EXPECT_EQ(PercentEncode("é"), "%C3%A9");
  EXPECT_EQ(PercentEncode(""), "");
}

}  // namespace
}  // namespace fls::server
