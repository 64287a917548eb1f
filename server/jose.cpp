// JOSE on OpenSSL 3: JWK <-> EVP_PKEY through OSSL_PARAM, signatures through EVP_DigestSign /
// EVP_DigestVerify. Only the JOSE encodings are done here (base64url, r||s for ECDSA).
// Any use of an OpenSSL 1.1 low-level API (RSA_*, EC_KEY_*) is a compile error in this file.
#define OPENSSL_API_COMPAT 30000
#define OPENSSL_NO_DEPRECATED

#include "server/jose.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>  // EVP_PKEY_CTX_set_rsa_keygen_bits only
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <climits>
#include <cstdint>
#include <set>
#include <stdexcept>
#include <utility>

namespace fls::server::jose {

namespace {

// unique_ptr deleters for OpenSSL objects: one template, the free function as its argument.
template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
struct OpensslFree {  // OPENSSL_free is a macro, so it cannot be a template argument
  void operator()(unsigned char* p) const { OPENSSL_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<&EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<&EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<&EVP_MD_CTX_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<&OSSL_PARAM_BLD_free>>;
// OpenSSL 3.0 has no OSSL_PARAM_clear_free: OSSL_PARAM_free wipes only the block that holds
// secure numbers, so private parts are read into BN_secure_new numbers (SecretBn).
using ParamsPtr = std::unique_ptr<OSSL_PARAM, Deleter<&OSSL_PARAM_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<&BN_clear_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<&ECDSA_SIG_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<&BIO_free>>;
using OsslBytesPtr = std::unique_ptr<unsigned char, OpensslFree>;

// OpenSSL keeps failures in a per-thread queue; a stale entry there can make a later, unrelated
// call on the same thread (SSL_get_error on a connection) report a failure. Every entry point
// that calls OpenSSL empties the queue on the way out.
struct ErrorQueueGuard {
  ErrorQueueGuard() = default;
  ErrorQueueGuard(const ErrorQueueGuard&) = delete;
  ErrorQueueGuard& operator=(const ErrorQueueGuard&) = delete;
  ~ErrorQueueGuard() { ERR_clear_error(); }
};

// Decoded private key parts, wiped when dropped.
struct Secret {
  std::string bytes;
  Secret() = default;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  ~Secret() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
};

[[noreturn]] void Fail(const std::string& why) { throw std::invalid_argument(why); }

constexpr int kMinRsaBits = 2048;
// Nobody signs with more; it bounds what checking a hostile JWKS can cost.
constexpr int kMaxRsaBits = 8192;
constexpr size_t kMaxCompactPart = 16 * 1024;
// A JWK is flat (an object holding strings and arrays of strings); deeper ones are refused
// before they are written back out, since rapidjson's Writer recurses.
constexpr int kMaxJwkDepth = 8;

struct Curve {
  std::string_view jwk_name;  // crv
  const char* ossl_name;      // OSSL_PKEY_PARAM_GROUP_NAME
  size_t coord_len;           // bytes of x, y, d, r and s
  std::string_view alg;       // the one JWS algorithm for the curve
};
constexpr Curve kCurves[] = {
    {"P-256", "prime256v1", 32, "ES256"},
    {"P-384", "secp384r1", 48, "ES384"},
};

const Curve* CurveByJwkName(std::string_view name) {
  for (const auto& c : kCurves)
    if (c.jwk_name == name) return &c;
  return nullptr;
}

const Curve* CurveByOsslName(std::string_view name) {
  for (const auto& c : kCurves)
    if (name == c.ossl_name) return &c;
  return nullptr;
}

struct Alg {
  std::string_view name;
  bool rsa;
  const EVP_MD* (*md)();
};
const Alg kAlgs[] = {
    {"RS256", true, &EVP_sha256},
    {"RS384", true, &EVP_sha384},
    {"ES256", false, &EVP_sha256},
    {"ES384", false, &EVP_sha384},
};

const Alg* FindAlg(std::string_view name) {
  for (const auto& a : kAlgs)
    if (a.name == name) return &a;
  return nullptr;
}

// Whether `alg` suits a key of this type and curve, ignoring any alg the JWK names.
bool AlgFits(std::string_view kty, std::string_view crv, std::string_view alg) {
  const Alg* a = FindAlg(alg);
  if (!a) return false;
  if (kty == "RSA") return a->rsa;
  const Curve* c = CurveByJwkName(crv);
  return kty == "EC" && c && c->alg == alg;
}

constexpr char kB64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::array<int8_t, 256> kB64Values = [] {
  std::array<int8_t, 256> t{};
  t.fill(-1);
  for (int i = 0; i < 64; ++i)
    t[static_cast<unsigned char>(kB64Alphabet[i])] = static_cast<int8_t>(i);
  return t;
}();

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// ---- JSON -----------------------------------------------------------------------------------

// Untrusted text: the iterative parser keeps deep nesting off the call stack, and strings must
// be UTF-8 so that a kid or payload passes on to logs and JSON output unmangled.
bool ParseJson(rapidjson::Document& doc, std::string_view text) {
  doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(text.data(),
                                                                                    text.size());
  return !doc.HasParseError();
}

// A repeated member ({"alg":"RS256","alg":"none"}) is read differently by different parsers.
bool HasRepeatedMember(const rapidjson::Value& obj) {
  std::set<std::string_view> seen;
  for (auto m = obj.MemberBegin(); m != obj.MemberEnd(); ++m)
    if (!seen.emplace(m->name.GetString(), m->name.GetStringLength()).second) return true;
  return false;
}

int Depth(const rapidjson::Value& root) {  // iterative, for the same reason as ParseJson
  int deepest = 0;
  std::vector<std::pair<const rapidjson::Value*, int>> todo{{&root, 1}};
  while (!todo.empty()) {
    auto [v, depth] = todo.back();
    todo.pop_back();
    deepest = std::max(deepest, depth);
    if (deepest > kMaxJwkDepth) break;
    if (v->IsObject())
      for (auto m = v->MemberBegin(); m != v->MemberEnd(); ++m)
        todo.emplace_back(&m->value, depth + 1);
    else if (v->IsArray())
      for (auto e = v->Begin(); e != v->End(); ++e) todo.emplace_back(&*e, depth + 1);
  }
  return deepest;
}

// `name` as a string; nullopt when absent. Throws when present but not a string.
std::optional<std::string_view> StringMember(const rapidjson::Value& obj, const char* name) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd()) return std::nullopt;
  if (!it->value.IsString()) Fail(std::string(name) + " is not a string");
  return std::string_view(it->value.GetString(), it->value.GetStringLength());
}

// A base64url JWK member, decoded; throws when absent or undecodable.
std::string JwkBytes(const rapidjson::Value& jwk, const char* name) {
  auto text = StringMember(jwk, name);
  if (!text) Fail(std::string("JWK lacks ") + name);
  auto bytes = Base64UrlDecode(*text);
  if (!bytes) Fail(std::string("JWK ") + name + " is not base64url");
  return std::move(*bytes);
}

void WriteString(rapidjson::Writer<rapidjson::StringBuffer>& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

// ---- OpenSSL helpers ------------------------------------------------------------------------

BnPtr ToBn(std::string_view big_endian) {
  BnPtr bn(BN_bin2bn(Bytes(big_endian), static_cast<int>(big_endian.size()), nullptr));
  if (!bn) Fail("out of memory");
  return bn;
}

// A private number: OSSL_PARAM_BLD puts secure numbers in the block that OSSL_PARAM_free wipes.
BnPtr SecretBn(std::string_view big_endian) {
  BnPtr bn(BN_secure_new());
  if (!bn || !BN_bin2bn(Bytes(big_endian), static_cast<int>(big_endian.size()), bn.get()))
    Fail("out of memory");
  return bn;
}

std::string FromBn(const BIGNUM* bn, size_t pad_to = 0) {
  size_t len = pad_to ? pad_to : static_cast<size_t>(BN_num_bytes(bn));
  std::string out(len, '\0');
  if (BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(len)) < 0)
    Fail("number too large");
  return out;
}

// The key's numeric parameter `name`, big-endian; nullopt when the key has none (a public key
// asked for its private part).
std::optional<std::string> BnParam(const EVP_PKEY* pkey, const char* name, size_t pad_to = 0) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &raw) != 1) return std::nullopt;
  BnPtr bn(raw);
  return FromBn(bn.get(), pad_to);
}

// A key from OSSL_PARAMs; nullptr when OpenSSL refuses them (for EC: a point off the curve).
PkeyPtr KeyFromParams(const char* type, OSSL_PARAM_BLD* bld, bool with_private) {
  ParamsPtr params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, with_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                        params.get()) != 1)
    return nullptr;
  return PkeyPtr(raw);
}

PkeyPtr RsaFromJwk(const rapidjson::Value& jwk) {
  // JWK member -> OpenSSL parameter, for the private half (RFC 7518 6.3.2).
  static const std::pair<const char*, const char*> kPrivate[] = {
      {"d", OSSL_PKEY_PARAM_RSA_D},          {"p", OSSL_PKEY_PARAM_RSA_FACTOR1},
      {"q", OSSL_PKEY_PARAM_RSA_FACTOR2},    {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1},
      {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2}, {"qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1},
  };
  if (jwk.HasMember("oth")) Fail("multi-prime RSA keys are not supported");
  BnPtr n = ToBn(JwkBytes(jwk, "n"));
  BnPtr e = ToBn(JwkBytes(jwk, "e"));
  if (BN_is_zero(n.get()) || BN_is_zero(e.get())) Fail("RSA n or e is zero");
  // Checked here, before OpenSSL does any work on the number.
  if (BN_num_bits(n.get()) < kMinRsaBits) Fail("RSA key under 2048 bits");
  if (BN_num_bits(n.get()) > kMaxRsaBits) Fail("RSA key over 8192 bits");

  size_t present = 0;
  for (const auto& [member, param] : kPrivate) present += jwk.HasMember(member) ? 1 : 0;
  // d alone is legal JOSE, but our own keys always carry the factors, and CRT signing is faster.
  if (present != 0 && present != std::size(kPrivate))
    Fail("RSA private JWK needs all of d, p, q, dp, dq and qi");

  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1)
    Fail("out of memory");
  // The builder keeps pointers to the numbers until to_param: they live to the end of scope.
  std::vector<BnPtr> parts;
  if (present) {
    for (const auto& [member, param] : kPrivate) {
      Secret s;
      s.bytes = JwkBytes(jwk, member);
      parts.push_back(SecretBn(s.bytes));
      if (OSSL_PARAM_BLD_push_BN(bld.get(), param, parts.back().get()) != 1) Fail("out of memory");
    }
  }
  PkeyPtr pkey = KeyFromParams("RSA", bld.get(), present != 0);
  if (!pkey) Fail("RSA key is invalid");
  return pkey;
}

PkeyPtr EcFromJwk(const rapidjson::Value& jwk) {
  auto crv = StringMember(jwk, "crv");
  if (!crv) Fail("JWK lacks crv");
  const Curve* curve = CurveByJwkName(*crv);
  if (!curve) Fail("unsupported crv");
  std::string x = JwkBytes(jwk, "x"), y = JwkBytes(jwk, "y");
  // Fixed lengths (RFC 7518 6.2.1.2): a short x is not silently left-padded.
  if (x.size() != curve->coord_len) Fail("EC x has the wrong length");
  if (y.size() != curve->coord_len) Fail("EC y has the wrong length");
  std::string point = "\x04" + x + y;  // uncompressed SEC1 point
  Secret d;
  bool with_private = jwk.HasMember("d");
  if (with_private) {
    d.bytes = JwkBytes(jwk, "d");
    if (d.bytes.size() != curve->coord_len) Fail("EC d has the wrong length");
  }

  // Public half first, so that a bad point and a bad d are told apart.
  auto build = [&](bool priv) {
    BnPtr d_bn;  // must outlive the builder's to_param, inside KeyFromParams
    ParamBldPtr bld(OSSL_PARAM_BLD_new());
    if (!bld ||
        OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, curve->ossl_name,
                                        0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size()) != 1)
      Fail("out of memory");
    if (priv) {
      d_bn = SecretBn(d.bytes);
      if (OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, d_bn.get()) != 1)
        Fail("out of memory");
    }
    return KeyFromParams("EC", bld.get(), priv);
  };
  PkeyPtr pub = build(false);
  if (!pub) Fail("EC point is not on the curve");
  if (!with_private) return pub;
  PkeyPtr pair = build(true);
  if (!pair) Fail("EC d is invalid");
  return pair;
}

// ---- signatures -----------------------------------------------------------------------------

// ECDSA in JOSE is r||s, each left-padded to the curve's length; OpenSSL speaks DER.
std::string DerToJose(std::string_view der, size_t coord_len) {
  const unsigned char* p = Bytes(der);
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) Fail("signing failed");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  return FromBn(r, coord_len) + FromBn(s, coord_len);
}

std::optional<std::string> JoseToDer(std::string_view raw, size_t coord_len) {
  if (raw.size() != 2 * coord_len) return std::nullopt;
  BnPtr r = ToBn(raw.substr(0, coord_len));
  BnPtr s = ToBn(raw.substr(coord_len));
  EcdsaSigPtr sig(ECDSA_SIG_new());
  // set0 takes ownership of r and s only when it succeeds.
  if (!sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return std::nullopt;
  (void)r.release();
  (void)s.release();
  unsigned char* der = nullptr;
  int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0) return std::nullopt;
  OsslBytesPtr hold(der);
  return std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
}

// The raw JOSE signature of `data`; coord_len is 0 for RSA.
std::string SignWith(EVP_PKEY* pkey, size_t coord_len, const EVP_MD* md, std::string_view data) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, pkey) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, Bytes(data), data.size()) != 1)
    Fail("signing failed");
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, Bytes(data),
                     data.size()) != 1)
    Fail("signing failed");
  sig.resize(len);  // the first call gives the maximum; a DER ECDSA signature is often shorter
  return coord_len ? DerToJose(sig, coord_len) : sig;
}

bool VerifyWith(EVP_PKEY* pkey, size_t coord_len, const EVP_MD* md, std::string_view data,
                std::string_view signature) {
  std::string der;
  if (coord_len) {
    auto converted = JoseToDer(signature, coord_len);
    if (!converted) return false;
    der = std::move(*converted);
    signature = der;
  } else if (signature.size() != static_cast<size_t>(EVP_PKEY_get_size(pkey))) {
    return false;  // PKCS#1 v1.5 signatures are exactly the modulus' length
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  // 1 is a good signature; 0 a bad one, below 0 an error: only 1 counts.
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, pkey) == 1 &&
         EVP_DigestVerify(ctx.get(), Bytes(signature), signature.size(), Bytes(data),
                          data.size()) == 1;
}

// For PEM reading: without a callback OpenSSL would prompt on the terminal for an encrypted key.
int NoPassword(char*, int, int, void*) { return 0; }

}  // namespace

// ---- base64url ------------------------------------------------------------------------------

std::string Base64UrlEncode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kB64Alphabet[(acc >> bits) & 0x3F]);
    }
    acc &= (1u << bits) - 1;
  }
  if (bits > 0) out.push_back(kB64Alphabet[(acc << (6 - bits)) & 0x3F]);
  return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);  // exact, so that no reallocation leaves a copy behind
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = kB64Values[static_cast<unsigned char>(c)];
    if (v < 0) return std::nullopt;  // '=', '+', '/', whitespace...
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
    acc &= (1u << bits) - 1;
  }
  return out;
}

// ---- Key ------------------------------------------------------------------------------------

struct Key::Impl {
  PkeyPtr pkey;
  size_t coord_len = 0;  // EC: bytes of a coordinate (32, 48); 0 for RSA

  // Every way of making a Key ends here, so every key meets the same rules: RSA of 2048 to 8192
  // bits or EC on P-256/P-384, a public part that passes OpenSSL's check, a JWK alg that fits,
  // and a private part, when there is one, that signs what the public part verifies.
  static Key Wrap(PkeyPtr pkey, std::string kid, std::string alg) {
    Key key;
    key.impl_ = std::make_unique<Impl>();
    Impl& impl = *key.impl_;
    EVP_PKEY* p = pkey.get();
    const EVP_MD* probe_md = EVP_sha256();
    if (EVP_PKEY_is_a(p, "RSA")) {  // not "RSA-PSS": those keys are bound to another padding
      int bits = EVP_PKEY_get_bits(p);
      if (bits < kMinRsaBits) Fail("RSA key under 2048 bits");
      if (bits > kMaxRsaBits) Fail("RSA key over 8192 bits");
      key.kty_ = "RSA";
    } else if (EVP_PKEY_is_a(p, "EC")) {
      char group[64] = {};
      size_t len = 0;
      // Fails for explicit curve parameters, which are refused with the other curves.
      const Curve* curve = EVP_PKEY_get_group_name(p, group, sizeof group, &len) == 1
                               ? CurveByOsslName(std::string_view(group, len))
                               : nullptr;
      if (!curve) Fail("unsupported EC curve");
      key.kty_ = "EC";
      key.crv_ = std::string(curve->jwk_name);
      impl.coord_len = curve->coord_len;
      probe_md = FindAlg(curve->alg)->md();
    } else {
      Fail("unsupported key type");
    }
    if (!alg.empty() && !AlgFits(key.kty_, key.crv_, alg)) Fail("alg does not match the key");

    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, p, nullptr));
    if (!ctx) Fail("out of memory");
    // EC: the point is on the curve and of the right order. RSA: n odd, composite, without small
    // factors, e odd and above 1 (OpenSSL outside FIPS mode still takes e = 3, which is safe with
    // its strict PKCS#1 v1.5 check).
    if (EVP_PKEY_public_check(ctx.get()) != 1)
      Fail(key.kty_ == "EC" ? "EC point is not on the curve" : "RSA public key is invalid");

    const char* private_param =
        key.kty_ == "RSA" ? OSSL_PKEY_PARAM_RSA_D : OSSL_PKEY_PARAM_PRIV_KEY;
    {
      BIGNUM* raw = nullptr;
      key.has_private_ = EVP_PKEY_get_bn_param(p, private_param, &raw) == 1;
      BN_clear_free(raw);
    }
    if (key.has_private_) {
      // A pairwise test rather than EVP_PKEY_check: the SP 800-56B rules that check applies to
      // RSA refuse keys whose d was reduced mod phi(n) instead of lcm, which work perfectly well.
      static constexpr std::string_view kProbe = "fls jose pairwise consistency";
      std::string sig = SignWith(p, impl.coord_len, probe_md, kProbe);
      if (!VerifyWith(p, impl.coord_len, probe_md, kProbe, sig))
        Fail("private key does not match the public key");
    }
    impl.pkey = std::move(pkey);
    key.kid_ = std::move(kid);
    key.alg_ = std::move(alg);
    return key;
  }
};

Key::Key() = default;
Key::~Key() = default;
Key::Key(Key&&) noexcept = default;
Key& Key::operator=(Key&&) noexcept = default;

Key Key::FromJwk(std::string_view jwk_json) {
  ErrorQueueGuard guard;
  rapidjson::Document doc;
  if (!ParseJson(doc, jwk_json) || !doc.IsObject()) Fail("JWK is not a JSON object");
  if (HasRepeatedMember(doc)) Fail("JWK repeats a member");

  auto kty = StringMember(doc, "kty");
  if (!kty) Fail("JWK lacks kty");
  if (*kty != "RSA" && *kty != "EC") Fail("unsupported kty");
  if (auto use = StringMember(doc, "use"); use && *use != "sig") Fail("JWK use is not sig");
  if (auto ops = doc.FindMember("key_ops"); ops != doc.MemberEnd()) {
    bool verify = false;
    if (!ops->value.IsArray()) Fail("key_ops is not an array");
    for (const auto& op : ops->value.GetArray()) {
      if (!op.IsString()) Fail("key_ops holds a non-string");
      verify = verify || std::string_view(op.GetString(), op.GetStringLength()) == "verify";
    }
    if (!verify) Fail("JWK key_ops lacks verify");
  }
  std::string alg(StringMember(doc, "alg").value_or(""));
  if (!alg.empty() && !FindAlg(alg)) Fail("unsupported alg");
  std::string kid(StringMember(doc, "kid").value_or(""));

  PkeyPtr pkey = *kty == "RSA" ? RsaFromJwk(doc) : EcFromJwk(doc);
  return Impl::Wrap(std::move(pkey), std::move(kid), std::move(alg));
}

Key Key::FromPem(std::string_view pem, std::string kid) {
  ErrorQueueGuard guard;
  if (pem.size() > INT_MAX) Fail("PEM too large");
  auto bio = [&] {  // a fresh reader for each attempt: a failed one has consumed its input
    BioPtr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!b) Fail("out of memory");
    return b;
  };
  BioPtr in = bio();
  PkeyPtr pkey(PEM_read_bio_PrivateKey(in.get(), nullptr, &NoPassword, nullptr));
  if (!pkey) {
    in = bio();
    pkey.reset(PEM_read_bio_PUBKEY(in.get(), nullptr, &NoPassword, nullptr));
  }
  if (!pkey) Fail("not a PEM key (or an encrypted one)");
  return Impl::Wrap(std::move(pkey), std::move(kid), "");
}

Key Key::Generate(std::string_view kty, std::string_view curve_or_bits, std::string kid) {
  ErrorQueueGuard guard;
  PkeyCtxPtr ctx;
  if (kty == "EC") {
    const Curve* curve = CurveByJwkName(curve_or_bits);
    if (!curve) Fail("unsupported EC curve");
    ctx.reset(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_group_name(ctx.get(), curve->ossl_name) != 1)
      Fail("key generation failed");
  } else if (kty == "RSA") {
    int bits = 0;
    auto [end, ec] =
        std::from_chars(curve_or_bits.data(), curve_or_bits.data() + curve_or_bits.size(), bits);
    if (ec != std::errc() || end != curve_or_bits.data() + curve_or_bits.size() ||
        bits < kMinRsaBits || bits > kMaxRsaBits)
      Fail("RSA bits must be between 2048 and 8192");
    ctx.reset(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), bits) != 1)
      Fail("key generation failed");
  } else {
    Fail("unsupported kty");
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_generate(ctx.get(), &raw) != 1) Fail("key generation failed");
  return Impl::Wrap(PkeyPtr(raw), std::move(kid), "");
}

bool Key::Allows(std::string_view alg) const {
  if (!impl_) return false;  // moved from
  if (!alg_.empty() && alg != alg_) return false;
  return AlgFits(kty_, crv_, alg);
}

std::string Key::PublicJwk() const {
  ErrorQueueGuard guard;
  if (!impl_) Fail("empty key");
  EVP_PKEY* p = impl_->pkey.get();
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto member = [&](std::string_view name, std::string_view value) {
    WriteString(w, name);
    WriteString(w, value);
  };
  auto number = [&](std::string_view name, const char* param, size_t pad_to) {
    auto bytes = BnParam(p, param, pad_to);
    if (!bytes) Fail("cannot export the key");
    member(name, Base64UrlEncode(*bytes));
  };
  w.StartObject();
  member("kty", kty_);
  if (!kid_.empty()) member("kid", kid_);
  member("use", "sig");
  if (kty_ == "RSA") {
    if (!alg_.empty()) member("alg", alg_);  // RS256 or RS384: only the JWK can say
    number("n", OSSL_PKEY_PARAM_RSA_N, 0);
    number("e", OSSL_PKEY_PARAM_RSA_E, 0);
  } else {
    member("alg", CurveByJwkName(crv_)->alg);  // the curve fixes it
    member("crv", crv_);
    // X and Y rather than the encoded point, which comes compressed for a key read that way.
    number("x", OSSL_PKEY_PARAM_EC_PUB_X, impl_->coord_len);
    number("y", OSSL_PKEY_PARAM_EC_PUB_Y, impl_->coord_len);
  }
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

std::string Key::PrivatePem() const {
  ErrorQueueGuard guard;
  if (!impl_ || !has_private_) Fail("key has no private part");
  BioPtr out(BIO_new(BIO_s_secmem()));
  // PEM_write_bio_PrivateKey writes PKCS#8 ("BEGIN PRIVATE KEY"), unencrypted here.
  if (!out || PEM_write_bio_PrivateKey(out.get(), impl_->pkey.get(), nullptr, nullptr, 0, nullptr,
                                       nullptr) != 1)
    Fail("cannot write the key");
  char* data = nullptr;
  long len = BIO_get_mem_data(out.get(), &data);
  if (len <= 0 || !data) Fail("cannot write the key");
  return std::string(data, static_cast<size_t>(len));
}

std::string Key::Sign(std::string_view alg, std::string_view data) const {
  ErrorQueueGuard guard;
  if (!Allows(alg)) Fail("alg not allowed for this key");
  if (!has_private_) Fail("key has no private part");
  return SignWith(impl_->pkey.get(), impl_->coord_len, FindAlg(alg)->md(), data);
}

bool Key::Verify(std::string_view alg, std::string_view data, std::string_view signature) const {
  ErrorQueueGuard guard;
  try {
    if (!Allows(alg)) return false;
    return VerifyWith(impl_->pkey.get(), impl_->coord_len, FindAlg(alg)->md(), data, signature);
  } catch (...) {  // allocation failures: a signature that cannot be checked is not good
    return false;
  }
}

// ---- JWKS -----------------------------------------------------------------------------------

const Key* KeySet::Find(std::string_view kid) const {
  for (const auto& k : keys)
    if (k && k->kid() == kid) return k.get();
  return nullptr;
}

KeySet ParseJwks(std::string_view jwks_json) {
  rapidjson::Document doc;
  if (!ParseJson(doc, jwks_json) || !doc.IsObject()) Fail("JWKS is not a JSON object");
  auto keys = doc.FindMember("keys");
  if (keys == doc.MemberEnd() || !keys->value.IsArray()) Fail("JWKS has no keys array");
  KeySet set;
  size_t index = 0;
  for (const auto& v : keys->value.GetArray()) {
    std::string where = "keys[" + std::to_string(index++) + "]: ";
    if (!v.IsObject()) {
      set.skipped.push_back(where + "not a JSON object");
      continue;
    }
    if (Depth(v) > kMaxJwkDepth) {
      set.skipped.push_back(where + "nested too deeply");
      continue;
    }
    // Written back out and read by FromJwk, so that both paths apply the same rules.
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    v.Accept(w);
    try {
      set.keys.push_back(std::make_shared<const Key>(
          Key::FromJwk(std::string_view(sb.GetString(), sb.GetSize()))));
    } catch (const std::invalid_argument& e) {
      set.skipped.push_back(where + e.what());
    }
  }
  return set;
}

std::string JwksJson(const std::vector<const Key*>& keys) {
  std::string out = "{\"keys\":[";
  bool first = true;
  for (const Key* k : keys) {
    if (!k) continue;
    if (!first) out += ',';
    out += k->PublicJwk();  // itself JSON
    first = false;
  }
  return out + "]}";
}

// ---- compact JWS ----------------------------------------------------------------------------

std::optional<Jws> ParseCompact(std::string_view token, std::string* error) {
  auto fail = [error](const char* why) -> std::optional<Jws> {
    if (error) *error = why;
    return std::nullopt;
  };
  size_t dot1 = token.find('.');
  size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return fail("not three parts");
  std::string_view parts[3] = {token.substr(0, dot1), token.substr(dot1 + 1, dot2 - dot1 - 1),
                               token.substr(dot2 + 1)};
  for (auto part : parts)
    if (part.size() > kMaxCompactPart) return fail("part over 16 KiB");

  Jws jws;
  auto header = Base64UrlDecode(parts[0]);
  if (!header) return fail("header is not base64url");
  auto payload = Base64UrlDecode(parts[1]);
  if (!payload) return fail("payload is not base64url");
  auto signature = Base64UrlDecode(parts[2]);
  if (!signature) return fail("signature is not base64url");

  rapidjson::Document h;
  if (!ParseJson(h, *header) || !h.IsObject()) return fail("header is not a JSON object");
  if (HasRepeatedMember(h)) return fail("header repeats a member");
  // Nothing here understands any extension, so none may be critical (RFC 7515 4.1.11).
  if (h.HasMember("crit")) return fail("crit header not supported");
  auto header_string = [&h](const char* name, std::string& out) {
    auto it = h.FindMember(name);
    if (it == h.MemberEnd()) return true;
    if (!it->value.IsString()) return false;
    out.assign(it->value.GetString(), it->value.GetStringLength());
    return true;
  };
  if (!h.HasMember("alg") || !header_string("alg", jws.alg))
    return fail("alg missing or not a string");
  if (!header_string("kid", jws.kid)) return fail("kid not a string");
  if (!header_string("typ", jws.typ)) return fail("typ not a string");

  rapidjson::Document p;
  if (!ParseJson(p, *payload) || !p.IsObject()) return fail("payload is not a JSON object");

  jws.header_json = std::move(*header);
  jws.payload_json = std::move(*payload);
  jws.signing_input = std::string(token.substr(0, dot2));
  jws.signature = std::move(*signature);
  return jws;
}

std::string SignCompact(const Key& key, std::string_view alg, std::string_view payload_json) {
  rapidjson::Document p;
  if (!ParseJson(p, payload_json) || !p.IsObject()) Fail("payload is not a JSON object");
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  WriteString(w, "alg");
  WriteString(w, alg);
  if (!key.kid().empty()) {  // a token without kid is matched by trying keys, not by ""
    WriteString(w, "kid");
    WriteString(w, key.kid());
  }
  WriteString(w, "typ");
  WriteString(w, "JWT");
  w.EndObject();
  std::string input = Base64UrlEncode(std::string_view(sb.GetString(), sb.GetSize())) + "." +
                      Base64UrlEncode(payload_json);
  std::string sig = key.Sign(alg, input);
  return input + "." + Base64UrlEncode(sig);
}

}  // namespace fls::server::jose
