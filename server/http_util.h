#pragma once
// Pure pieces of the HTTP listener, apart so that unit tests can reach them: request-line
// repair, request ids, Accept-Encoding, gzip, CORS origins. No sockets, no state.

#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace fls::server {

// ASCII case-insensitive equality (header names, tokens).
bool IEquals(std::string_view a, std::string_view b);
// Equality of two secrets in a time that depends on their length only.
bool ConstantTimeEquals(std::string_view a, std::string_view b);
// RFC 3986 percent-encoding: unreserved characters (letters, digits, - . _ ~) and those of
// `also_keep` as they are, every other byte as %XX (upper case).
std::string PercentEncode(std::string_view text, std::string_view also_keep = "");
// ASCII lower case (header names, media types).
std::string Lower(std::string_view s);

// The request line (without its CRLF) with every raw space inside the target written as %20:
// the line is split at its first space (after the method) and at its last " HTTP/" (before the
// version). nullopt when there is nothing to repair (including lines too broken to split, which
// the parser then refuses).
std::optional<std::string> RepairRequestLine(std::string_view line);

// The client's X-Request-Id when it is 1-64 characters of [A-Za-z0-9._-], else a new UUID.
std::string SafeRequestId(std::string_view client_value);

// Best effort for requests refused before their header could be parsed (too large, malformed):
// the value of the first header line named `lower_name` in the raw bytes, or "".
std::string_view RawHeaderValue(std::string_view raw, std::string_view lower_name);

// A Host header safe to put in links (letters, digits, '.', '-', ':', '[', ']'; at most 255).
bool SafeHost(std::string_view host);

// Whether an Accept-Encoding value accepts gzip (gzip, x-gzip or *, with q > 0; RFC 9110 12.5.3).
bool AcceptsGzip(std::string_view accept_encoding);

// The gzip (RFC 1952) encoding of `data`. Throws std::runtime_error when zlib fails.
std::string Gzip(std::string_view data);

// The origins allowed by FLS_CORS_ORIGINS: a comma-separated list, or "*" for any.
class CorsPolicy {
 public:
  explicit CorsPolicy(std::string_view origins);
  bool enabled() const { return any_ || !origins_.empty(); }
  bool Allows(std::string_view origin) const;

 private:
  bool any_ = false;
  std::set<std::string, std::less<>> origins_;
};

// An Access-Control-Request-Headers value safe to echo (header-name tokens and commas), else "".
std::string SafeHeaderList(std::string_view value);

}  // namespace fls::server
