#pragma once
// Pseudonyms for the extracts that the quality role may take (docs/kpis.md): HMAC-SHA256 of
// "Type/id" under a per-deployment key, so that one patient has one pseudonym in every extract of
// this deployment, and nobody without the key can go back to the id or link two deployments.
// The key is `pseudonym.key` in the auth folder (FLS_AUTH_DIR), 256 random bits, made on first
// use (mode 0600, atomically: several processes starting together end with one key). Losing it
// changes every pseudonym; copying it gives them away: back it up with the signing keys.
// Thread-safe: immutable after construction.

#include <string>
#include <string_view>

namespace fls::server {

class Pseudonyms {
 public:
  // Reads or makes the key in `dir`. Throws std::runtime_error when it can do neither.
  explicit Pseudonyms(const std::string& dir);
  // "ps-" and 32 hex digits (128 bits of the HMAC).
  std::string Of(std::string_view what) const;

 private:
  std::string key_;
};

}  // namespace fls::server
