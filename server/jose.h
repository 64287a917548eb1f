#pragma once
// JSON Web Keys (RFC 7517), JSON Web Signatures in compact form (RFC 7515) and the algorithms of
// RFC 7518 that the server accepts: RS256, RS384 (RSASSA-PKCS1-v1_5, RSA keys of 2048 bits or
// more), ES256 (P-256) and ES384 (P-384). Every signature is made and checked by OpenSSL 3
// (EVP_DigestSign / EVP_DigestVerify); this unit only moves bytes between the JOSE encodings and
// OpenSSL's. The algorithm a token claims must match the key it is checked with: `none`, the HMAC
// algorithms (HS*), an RSA algorithm with an EC key or the other way round, a curve other than the
// algorithm's, are all refused, whatever the token's header says.
// Keys are immutable after construction; safe across threads.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fls::server::jose {

std::string Base64UrlEncode(std::string_view bytes);
// nullopt on characters outside the base64url alphabet, on '=' padding, or on a length no
// encoding produces (len % 4 == 1).
std::optional<std::string> Base64UrlDecode(std::string_view text);

// One key. Public keys check signatures; a key built with a private part can also sign.
class Key {
 public:
  ~Key();
  Key(Key&&) noexcept;
  Key& operator=(Key&&) noexcept;
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;

  // A JWK object as JSON text: kty RSA (n, e; private: also d, p, q, dp, dq, qi) or EC (crv P-256
  // or P-384, x, y; private: also d). `use` other than "sig" and `key_ops` without "verify" are
  // refused; `alg`, when present, is kept and must be one the server accepts. Throws
  // std::invalid_argument naming what is wrong (never the key material).
  static Key FromJwk(std::string_view jwk_json);
  // A PEM private or public key (PKCS#8, traditional, or SubjectPublicKeyInfo); `kid` given by
  // the caller. Throws std::invalid_argument.
  static Key FromPem(std::string_view pem, std::string kid);
  // A fresh key pair: "EC" with curve "P-256" or "P-384", or "RSA" with 2048 or more bits.
  static Key Generate(std::string_view kty, std::string_view curve_or_bits, std::string kid);

  const std::string& kid() const { return kid_; }
  const std::string& kty() const { return kty_; }  // "RSA" or "EC"
  const std::string& crv() const { return crv_; }  // "P-256", "P-384" or "" for RSA
  const std::string& alg() const { return alg_; }  // from the JWK, or ""
  bool has_private() const { return has_private_; }

  // True when `alg` may be used with this key (RS256/RS384 for RSA, ES256 for P-256, ES384 for
  // P-384; and equal to the JWK's own `alg` when it has one).
  bool Allows(std::string_view alg) const;
  // The public half as a JWK JSON object (kty, kid, use "sig", alg when known, n/e or crv/x/y).
  std::string PublicJwk() const;
  // The private key as PEM (PKCS#8), for storing a generated key. REQUIRES: has_private().
  std::string PrivatePem() const;

  // Signs `data` with `alg`; the raw JOSE signature bytes (r||s for ES*). Throws
  // std::invalid_argument when !Allows(alg) or the key has no private part.
  std::string Sign(std::string_view alg, std::string_view data) const;
  // Checks a JOSE signature; false on any mismatch, never throws on bad input.
  bool Verify(std::string_view alg, std::string_view data, std::string_view signature) const;

 private:
  Key();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string kid_, kty_, crv_, alg_;
  bool has_private_ = false;
};

// The keys of a JWKS document ({"keys": [...]}); keys that fail FromJwk are skipped and their
// reasons returned in `skipped`.
struct KeySet {
  std::vector<std::shared_ptr<const Key>> keys;
  std::vector<std::string> skipped;
  const Key* Find(std::string_view kid) const;  // nullptr when absent
};
// Throws std::invalid_argument when the text is not a JSON object with a "keys" array.
KeySet ParseJwks(std::string_view jwks_json);
// {"keys":[...public JWKs...]}
std::string JwksJson(const std::vector<const Key*>& keys);

// A compact JWS split and decoded, before any check of its signature.
struct Jws {
  std::string header_json;   // decoded protected header
  std::string payload_json;  // decoded payload
  std::string alg, kid, typ;  // from the header ("" when absent)
  std::string signing_input;  // "<b64 header>.<b64 payload>", what the signature covers
  std::string signature;      // decoded signature bytes
};
// nullopt unless: three base64url parts, header and payload JSON objects, `alg` a string, no
// `crit` header, and each part at most 16 KiB. The reason goes to `error` when given.
std::optional<Jws> ParseCompact(std::string_view token, std::string* error = nullptr);

// header {"alg":..,"kid":..,"typ":"JWT"} + payload, signed with `key`.
std::string SignCompact(const Key& key, std::string_view alg, std::string_view payload_json);

}  // namespace fls::server::jose
