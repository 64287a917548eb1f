#include "server/jose.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <functional>
#include <map>
#include <random>
#include <stdexcept>
#include <thread>

namespace fls::server::jose {
namespace {

// ---- vectors ----------------------------------------------------------------------------------

// RFC 7515 A.2: RS256. PKCS#1 v1.5 is deterministic, so the example signature is reproduced.
const char kA2Public[] =
    R"({"kty":"RSA","kid":"a2","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmf)"
    R"(HQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wG)"
    R"(zjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZ)"
    R"(lxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54)"
    R"(h4FRWyuXpoQ","e":"AQAB"})";
const char kA2Private[] =
    R"({"kty":"RSA","kid":"a2","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmf)"
    R"(HQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wG)"
    R"(zjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZ)"
    R"(lxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54)"
    R"(h4FRWyuXpoQ","e":"AQAB","d":"Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA)"
    R"(7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfF)"
    R"(NS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQU)"
    R"(Shb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1D)"
    R"(hOVRuOopznQ","p":"4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3)"
    R"(KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z)"
    R"(-y2XDwGUc","q":"uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7)"
    R"(zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJID)"
    R"(Ez9RWdc","dp":"BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3QCLdhrqE2e9YkxvuxdB)"
    R"(fpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxH)"
    R"(QAdYo0","dq":"h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa7I9xXDoRwbKgB719rrm)"
    R"(I2oKr6N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-kyNlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0t)"
    R"(IiTHU","qi":"IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2oy26F0EmpScGLq2MowX7f)"
    R"(hd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJtoOPLUW0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFk)"
    R"(uQ3U"})";
// The payload of A.2 and A.3 has CRLF line breaks.
const char kRfcPayload[] =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlf"
    "Q";
const char kA2Token[] =
    "eyJhbGciOiJSUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    "."
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_"
    "O8W2Fp5jujG"
    "bds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_"
    "nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K"
    "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-"
    "eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6"
    "LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

// RFC 7515 A.3: ES256. ECDSA is randomised: the example is verified, not reproduced.
const char kA3X[] = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const char kA3Y[] = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
const char kA3D[] = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
const char kA3Token[] =
    "eyJhbGciOiJFUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    "."
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

std::string A3Jwk(bool with_private) {
  return std::string(R"({"kty":"EC","kid":"a3","crv":"P-256","x":")") + kA3X + R"(","y":")" + kA3Y +
         (with_private ? std::string(R"(","d":")") + kA3D : std::string()) + "\"}";
}

// Made with the openssl command line (openssl dgst -sign, DER converted to r||s by hand).
// ES256 with the A.3 key, whose s is 31 bytes: the r||s form must pad it to 32.
const char kShortSInput[] = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJmbHMtdGVzdCIsInN1YiI6IjQyIn0";
const char kShortSSignature[] =
    "8fDdaY4g_xKhsNAXFAkf3UcK2kE0PRa-gLqMIDPbrVAAeEFsKcP9ijBVXpmCJLPkt01FTD4wnvY1xk7-o2s8oA";
// ES384: a P-384 key as a traditional (SEC1) PEM, its public half as SPKI and as a JWK.
const char kEs384Input[] = "eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJmbHMtdGVzdCIsInN1YiI6IjQyIn0";
const char kEs384Signature[] =
    "kG41V-cKaCKme1s95JB8RHAsaRbnTrcdCR5i41s7Ze_uQDaL_Jug3-"
    "fZ0oexQZbPUTPnxiPYbDuSJ5KpnkNoJiPGIC66606H"
    "5y4zqoDZCg2YsH0P2qbJKLj_843TfSPi";
const char kEs384Jwk[] =
    R"({"kty":"EC","kid":"p384","crv":"P-384",)"
    R"("x":"_l_gkx7fnAhpIz-2UaQ8PrqOLkm04l37garK2F1ItZLQHkJq8-0Wo5L5J8jSwsy7",)"
    R"("y":"WznsCl_WVkVUdimNAOx4LVvcfxoj_hTijuYJfYopp9t7n-yxc5mK-WCGnwHxZ4ED"})";
const char kEs384Sec1Pem[] =
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MIGkAgEBBDA9kBTMNwkIUVZ30ENJbfs7AzhEdgfVHPX4v4Zh9jccSWC8vfXvZ93v\n"
    "RctAPwdQ3yqgBwYFK4EEACKhZANiAAT+X+CTHt+cCGkjP7ZRpDw+uo4uSbTiXfuB\n"
    "qsrYXUi1ktAeQmrz7RajkvknyNLCzLtbOewKX9ZWRVR2KY0A7HgtW9x/GiP+FOKO\n"
    "5gl9iimn23uf7LFzmYr5YIafAfFngQM=\n"
    "-----END EC PRIVATE KEY-----\n";
const char kEs384SpkiPem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE/l/gkx7fnAhpIz+2UaQ8PrqOLkm04l37\n"
    "garK2F1ItZLQHkJq8+0Wo5L5J8jSwsy7WznsCl/WVkVUdimNAOx4LVvcfxoj/hTi\n"
    "juYJfYopp9t7n+yxc5mK+WCGnwHxZ4ED\n"
    "-----END PUBLIC KEY-----\n";
// The A.3 public key with its point compressed, and its private key encrypted (pass "secret").
const char kA3CompressedSpkiPem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MDkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDIgADf83OJ3D2xF1Bg8vub9tLe1gHMzV7\n"
    "6e8Tus9uPHvRVEU=\n"
    "-----END PUBLIC KEY-----\n";
const char kA3EncryptedPem[] =
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
    "MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAifbrBNER4GrAICCAAw\n"
    "DAYIKoZIhvcNAgkFADAdBglghkgBZQMEAQIEEHtHSg7aSqlG3nNPTNrj0/gEgZBI\n"
    "yg2vFYs5dJ5meAWWo+b9YYO68j/95s7V3km56he2+kGbaaxPCzm84GnoXHRMEcGW\n"
    "cW4O8Giyu+fP3wBukjCqx/PUKvl/pHLw6OjnjP/8EnlgJbyD6rb0DqfcvuCuw40V\n"
    "yCYKIyLGKnZRcQUC9wDFI3sFVt/lfXkC8rZskvdQedCqsfOeHyBW6kPiovRwZYk=\n"
    "-----END ENCRYPTED PRIVATE KEY-----\n";
// RS384: a 2048-bit key as a traditional PKCS#1 PEM, and its modulus.
const char kRs384Input[] = "eyJhbGciOiJSUzM4NCJ9.eyJpc3MiOiJmbHMtdGVzdCIsInN1YiI6IjQyIn0";
const char kRs384Signature[] =
    "flY0PRf7433Sj0-oNOOL6za0zKGrI6GgleohOmyM2I7NKzBea7LtPC2ZAQE2wxc7Dd_"
    "4GNPBzQGMvviIiWPiuVIzdPUvwLpE"
    "t5YtX1ivWWtpXqy8n2lhzw6T4xNTASpNdi1kNyZ_ALVs0uBON-tUGjemhBNAj5ajB1N30Unk4wL-"
    "6Yn85MLj4P6GUEKCa9Rl"
    "aVcmsCqrLgX5RK4v4_"
    "s4pH41mQyEKfUFS00pQUqccExdbJZTAwIOqJhALnZ4JJd7zjvybvNzNU4qvUgX88Kmh9jE3LOGEh2K"
    "fbemna1Eav5Z5G0dUv02R0DQy8hQr3l4IMpnUc9pClanZmjjFm5JcQ";
const char kRs384N[] =
    "lMbuHeSuK_AoJJ_18MzlDuCsfcFnfBH0kyoXuoJZg7tiYfWDgmD-XVY5yNG3phnAGr14G0AohS-"
    "hdZkwFEqN0H2qqM3F08EDEw"
    "2WXwSnq285ty4bN5xGmU8squcQU0L0JVRfo2CYpHxK4BK_-j9Q-IT9WswPuCdD8U9bGV6dYROU7a-"
    "Egy6qjrhUaGnVpyrSmb4H"
    "NSqzONF6w86ZPBw-"
    "VDtq8d2zXMvvWk3XDVT9X6yFx5KrQppOJ2sxjhS1AeDcXoXPawEFaG1y8KcxrR3osRnTyUWLIP29QUG_N9"
    "qw0QPcsNk67cupVBEVpRduoddYfa60SYd0pRLai6wlg42WAQ";
const char kRs384Pem[] =
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEogIBAAKCAQEAlMbuHeSuK/AoJJ/18MzlDuCsfcFnfBH0kyoXuoJZg7tiYfWD\n"
    "gmD+XVY5yNG3phnAGr14G0AohS+hdZkwFEqN0H2qqM3F08EDEw2WXwSnq285ty4b\n"
    "N5xGmU8squcQU0L0JVRfo2CYpHxK4BK/+j9Q+IT9WswPuCdD8U9bGV6dYROU7a+E\n"
    "gy6qjrhUaGnVpyrSmb4HNSqzONF6w86ZPBw+VDtq8d2zXMvvWk3XDVT9X6yFx5Kr\n"
    "QppOJ2sxjhS1AeDcXoXPawEFaG1y8KcxrR3osRnTyUWLIP29QUG/N9qw0QPcsNk6\n"
    "7cupVBEVpRduoddYfa60SYd0pRLai6wlg42WAQIDAQABAoIBAANUTqSoxv9bjOEW\n"
    "8EzEH7XHxYG8l9QrswauY4thr972DPNRaHDnj+xRnzzqeTA0dXtTtUdHgLChpSdp\n"
    "zGzj0eJyHCUnZ69/q1HcP7rJcqFwPYEnJ7uZ7xgusKVJbZuDYnh0Yn3YOJ+TsCRC\n"
    "tHzv46AQGnr97osfMSgfr75KAv5sBkYW3OcGjllU7185Xuh4+wq4huBrNeavp7Ms\n"
    "Tk/dLRnF4l+o25iX+evHwTChTFOGcj8CuVBVLmyzpMwVm+Pd7z9f8F8KHHj3fO+N\n"
    "17UPNA9ejHvNWvU5Y06FM+vK4la6NCiGa2mbiPxjChulxqUExT8pWFAXuZtxBia4\n"
    "M4uTdh0CgYEAxOuV7R1ntQ0gm/zADYCMv4ItKTi0lsps/Yig+v2SvM3WkbtIYqLH\n"
    "mp9dVoAl7pkjKUc7R339vqpdwbDEArVR5OevkOWSzWwyqvJ3hh18dzp2OKiGr0iE\n"
    "cACGjXTgfQukeeAUKH/qTxwgEiEAbB9WqcgiCuVv2VGwtnBwftmyHv0CgYEAwWm3\n"
    "5mdA7CD/2cqBmLL6u1t8KlHri6fTdByOqLPXJUgFqT8YmDNzgXHBa8j04VWuvdaI\n"
    "h1Lju/Kh+B+TSza527MViSl1HI1KwWkgIfwh5SbgnBICWgzAQM1+cd4vDhdZF8Zi\n"
    "fPnajrrLnbtqQ+5gzxJtDp1pmSxCku+EoIyePFUCgYA1Wg64u2rJptDa8lOmVNnN\n"
    "WRubO33SDO4Skt3qoqEK/knQGgm2j5u8zMihEv8z8dGQ8XeiGwSQj9/vBlFU2oNh\n"
    "nVP30ftAJLxljGPNtlduhixZlW9INkGLhtjtomjf+DOLwaY0gtOcs2YNA1v171ev\n"
    "kEWI5jizjGpwQ253L8wOkQKBgB4xmdLvNZRnRmnCkl67Oic7jfOxXDsuFPWga6js\n"
    "gl7AkpmsTvObvKFtl8ty0L/It4HNVv0BNKono59vlnf8cCFbILaL8Utmx0/QUILd\n"
    "sJDsc84JhbJ3ISA8tEukauYhQPhUMRXfj34OrTDPjDRUp2pMLxhD/LM71JzJpYPG\n"
    "0AENAoGAGGQzL4Q6DFWLbnh75mfSE9G64eyG4gAg0khv7fswtk/rccl3/jIysYOq\n"
    "nl93ApCnvaQINOo8TOG2Wi3viEQPDjFVJeEdMHsPAz0aLACyjtAce6ikSW3Tl7ze\n"
    "I5jRPWBmvZMU3RBhdHdptMOyTLKmzTiXtgLx9HP8UNfUv4/tGwc=\n"
    "-----END RSA PRIVATE KEY-----\n";
// A 1024-bit modulus, for the refusal.
const char kRsa1024N[] =
    "zuRBJd1-fpPxJzCZH0u4sIgzHMlbm-NfW3VOh7IDifcUgBMh5FoBfb9ACP4gOxl0FV0Ai9QBwLOk9QER1AFN6X6i-O-"
    "6gTZApG"
    "boj1emuFh5UiNpPDHyAYmSZo-U-rtGbAwI3cPlTWw3BazYxa70l4nL9gcRJXlbIi30W_VTd_E";

// ---- helpers ----------------------------------------------------------------------------------

std::string Decode(std::string_view b64) {
  auto out = Base64UrlDecode(b64);
  EXPECT_TRUE(out.has_value()) << b64;
  return out.value_or("");
}

std::string B64(std::string_view s) { return Base64UrlEncode(s); }

// Generated keys, made once: RSA generation takes a while. Never destroyed: OpenSSL's own atexit
// cleanup would run before a static map's destructor freed them.
struct Generated {
  const char* name;
  const char* kty;
  const char* size;
  const char* alg;
  size_t signature_bytes;
};
const Generated kGenerated[] = {
    {"rsa2048-rs256", "RSA", "2048", "RS256", 256},
    {"rsa2048-rs384", "RSA", "2048", "RS384", 256},
    {"p256", "EC", "P-256", "ES256", 64},
    {"p384", "EC", "P-384", "ES384", 96},
};
const Key& GeneratedKey(const Generated& g) {
  static std::map<std::string, Key>* keys = new std::map<std::string, Key>();
  std::string id = std::string(g.kty) + g.size;  // the two RSA rows share one key
  auto it = keys->find(id);
  if (it == keys->end()) it = keys->emplace(id, Key::Generate(g.kty, g.size, id)).first;
  return it->second;
}

std::string ThrowReason(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no exception)";
}

// ---- base64url --------------------------------------------------------------------------------

TEST(JoseBase64Url, EncodesWithoutPadding) {
  struct Row {
    std::string bytes, text;
  };
  const Row rows[] = {
      {"", ""},
      {"f", "Zg"},
      {"fo", "Zm8"},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg"},
      {std::string("\xfb\xff", 2), "-_8"},  // the two characters that differ from base64
      {std::string("\x00\x00\x00", 3), "AAAA"},
  };
  for (const auto& row : rows) {
    EXPECT_EQ(Base64UrlEncode(row.bytes), row.text);
    auto back = Base64UrlDecode(row.text);
    ASSERT_TRUE(back.has_value()) << row.text;
    EXPECT_EQ(*back, row.bytes) << row.text;
  }
}

TEST(JoseBase64Url, RefusesPaddingForeignCharactersAndImpossibleLengths) {
  const char* rows[] = {"Zg==", "Zg=",   "=",     "Zm9v=",  "+_8",  "/_8",   "-_+",
                        "Z",    "Zm9vY", "Zm 9v", "Zm9v\n", "Zm.9", "Zm9v%", "\xc3\xa9"};
  for (const char* text : rows) EXPECT_FALSE(Base64UrlDecode(text).has_value()) << text;
  EXPECT_FALSE(Base64UrlDecode(std::string_view("Zm\0v", 4)).has_value());
}

TEST(JoseBase64Url, RoundTripsEveryLengthAndByte) {
  std::mt19937 rng(7);
  for (size_t len = 0; len < 70; ++len) {
    std::string bytes(len, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    std::string text = Base64UrlEncode(bytes);
    EXPECT_EQ(text.size(), (len * 4 + 2) / 3);
    EXPECT_EQ(Base64UrlDecode(text).value_or("?"), bytes);
  }
}

// ---- keys: sign and verify ----------------------------------------------------------------------

TEST(JoseKey, GeneratedKeysSignAndVerify) {
  const std::string data = "header.payload";
  for (const auto& g : kGenerated) {
    SCOPED_TRACE(g.name);
    const Key& key = GeneratedKey(g);
    EXPECT_EQ(key.kty(), g.kty);
    EXPECT_EQ(key.crv(), key.kty() == "EC" ? g.size : "");
    EXPECT_TRUE(key.has_private());
    EXPECT_TRUE(key.Allows(g.alg));
    std::string sig = key.Sign(g.alg, data);
    EXPECT_EQ(sig.size(), g.signature_bytes);
    EXPECT_TRUE(key.Verify(g.alg, data, sig));

    std::string tampered_data = data;
    tampered_data[0] ^= 1;
    EXPECT_FALSE(key.Verify(g.alg, tampered_data, sig));
    EXPECT_FALSE(key.Verify(g.alg, data + "x", sig));
    for (size_t at : {size_t{0}, sig.size() / 2, sig.size() - 1}) {
      std::string bad = sig;
      bad[at] ^= 0x01;
      EXPECT_FALSE(key.Verify(g.alg, data, bad)) << "byte " << at;
    }
    EXPECT_FALSE(key.Verify(g.alg, data, sig.substr(0, sig.size() - 1)));
    EXPECT_FALSE(key.Verify(g.alg, data, sig + '\0'));
    EXPECT_FALSE(key.Verify(g.alg, data, std::string(1, '\0') + sig));
    EXPECT_FALSE(key.Verify(g.alg, data, ""));
    EXPECT_FALSE(key.Verify(g.alg, data, std::string(sig.size(), '\0')));
    EXPECT_FALSE(key.Verify(g.alg, data, std::string(sig.size(), '\xff')));
  }
}

TEST(JoseKey, VerifyNeverThrowsOnGarbage) {
  std::mt19937 rng(11);
  for (const auto& g : kGenerated) {
    const Key& key = GeneratedKey(g);
    for (size_t len : {0, 1, 31, 32, 63, 64, 65, 95, 96, 97, 128, 255, 256, 257, 512, 4096}) {
      std::string sig(len, '\0');
      for (auto& c : sig) c = static_cast<char>(rng());
      EXPECT_NO_THROW(EXPECT_FALSE(key.Verify(g.alg, "data", sig))) << g.name << " " << len;
    }
  }
  // A moved-from key checks nothing.
  Key moved = Key::Generate("EC", "P-256", "m");
  std::string sig = moved.Sign("ES256", "data");
  Key taker = std::move(moved);
  EXPECT_TRUE(taker.Verify("ES256", "data", sig));
  EXPECT_FALSE(moved.Allows("ES256"));               // NOLINT(bugprone-use-after-move)
  EXPECT_FALSE(moved.Verify("ES256", "data", sig));  // NOLINT(bugprone-use-after-move)
}

TEST(JoseKey, RefusesAlgorithmsNotMeantForTheKey) {
  Key p256 = Key::FromJwk(A3Jwk(true));
  Key p384 = Key::FromPem(kEs384Sec1Pem, "p384");
  Key rsa = Key::FromJwk(kA2Private);
  std::string a2_with_alg = kA2Private;
  a2_with_alg.insert(1, R"("alg":"RS256",)");
  Key rsa_rs256_only = Key::FromJwk(a2_with_alg);
  struct Row {
    const char* name;
    const Key& key;
    const char* good_alg;  // signs the data whose signature the bad alg is shown
    const char* bad_alg;
  };
  const Row rows[] = {
      {"none on EC", p256, "ES256", "none"},
      {"HS256 on EC", p256, "ES256", "HS256"},
      {"HS384 on RSA", rsa, "RS384", "HS384"},
      {"HS256 on RSA", rsa, "RS256", "HS256"},
      {"none on RSA", rsa, "RS256", "none"},
      {"RS384 on EC", p256, "ES256", "RS384"},
      {"RS256 on EC", p384, "ES384", "RS256"},
      {"ES384 on P-256", p256, "ES256", "ES384"},
      {"ES256 on P-384", p384, "ES384", "ES256"},
      {"ES256 on RSA", rsa, "RS256", "ES256"},
      {"ES384 on RSA", rsa, "RS384", "ES384"},
      {"PS256 on RSA", rsa, "RS256", "PS256"},
      {"lower case", p256, "ES256", "es256"},
      {"trailing space", p256, "ES256", "ES256 "},
      {"empty", p256, "ES256", ""},
      {"not the JWK's own alg", rsa_rs256_only, "RS256", "RS384"},
  };
  const std::string data = "header.payload";
  for (const auto& row : rows) {
    SCOPED_TRACE(row.name);
    std::string sig = row.key.Sign(row.good_alg, data);
    ASSERT_TRUE(row.key.Verify(row.good_alg, data, sig));
    EXPECT_FALSE(row.key.Allows(row.bad_alg));
    EXPECT_FALSE(row.key.Verify(row.bad_alg, data, sig));
    EXPECT_FALSE(row.key.Verify(row.bad_alg, data, ""));
    EXPECT_THROW(row.key.Sign(row.bad_alg, data), std::invalid_argument);
    EXPECT_THROW(SignCompact(row.key, row.bad_alg, "{}"), std::invalid_argument);
  }
  EXPECT_EQ(rsa_rs256_only.alg(), "RS256");
  EXPECT_TRUE(rsa.Allows("RS256"));
  EXPECT_TRUE(rsa.Allows("RS384"));
}

TEST(JoseKey, GenerateRefusesWhatTheServerDoesNotAccept) {
  const std::pair<const char*, const char*> rows[] = {
      {"RSA", "1024"}, {"RSA", "2047"},     {"RSA", "abc"},  {"RSA", "2048x"}, {"RSA", ""},
      {"EC", "P-521"}, {"EC", "secp256k1"}, {"EC", "p-256"}, {"oct", "256"},   {"OKP", "Ed25519"}};
  for (const auto& [kty, size] : rows)
    EXPECT_THROW(Key::Generate(kty, size, "k"), std::invalid_argument) << kty << " " << size;
}

TEST(JoseKey, PrivatePemRoundTripsAndSigns) {
  for (const auto& g : kGenerated) {
    SCOPED_TRACE(g.name);
    const Key& key = GeneratedKey(g);
    std::string pem = key.PrivatePem();
    EXPECT_EQ(pem.rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u) << "PKCS#8";
    Key back = Key::FromPem(pem, "again");
    EXPECT_EQ(back.kid(), "again");
    EXPECT_EQ(back.kty(), key.kty());
    EXPECT_EQ(back.crv(), key.crv());
    EXPECT_TRUE(back.has_private());
    EXPECT_TRUE(key.Verify(g.alg, "data", back.Sign(g.alg, "data")));
    EXPECT_TRUE(back.Verify(g.alg, "data", key.Sign(g.alg, "data")));
    EXPECT_EQ(back.PublicJwk().substr(back.PublicJwk().find("\"use\"")),
              key.PublicJwk().substr(key.PublicJwk().find("\"use\"")));
  }
}

TEST(JoseKey, FromPemReadsTraditionalAndPublicFormsAndRefusesTheRest) {
  Key es384 = Key::FromPem(kEs384Sec1Pem, "p384");
  EXPECT_TRUE(es384.has_private());
  EXPECT_EQ(es384.crv(), "P-384");
  EXPECT_TRUE(es384.Verify("ES384", kEs384Input, Decode(kEs384Signature)));

  Key es384_public = Key::FromPem(kEs384SpkiPem, "p384");
  EXPECT_FALSE(es384_public.has_private());
  EXPECT_TRUE(es384_public.Verify("ES384", kEs384Input, Decode(kEs384Signature)));
  EXPECT_TRUE(es384_public.Verify("ES384", "x", es384.Sign("ES384", "x")));
  EXPECT_THROW(es384_public.Sign("ES384", "x"), std::invalid_argument);
  EXPECT_THROW(es384_public.PrivatePem(), std::invalid_argument);

  // A compressed point comes out of PublicJwk as the RFC's x and y.
  Key compressed = Key::FromPem(kA3CompressedSpkiPem, "a3");
  EXPECT_EQ(compressed.PublicJwk(), Key::FromJwk(A3Jwk(false)).PublicJwk());
  EXPECT_TRUE(compressed.Verify("ES256", kShortSInput, Decode(kShortSSignature)));

  // PKCS#1 RSA; the signature is deterministic, so it must be exactly the command line's.
  Key rs384 = Key::FromPem(kRs384Pem, "rsa");
  EXPECT_EQ(rs384.Sign("RS384", kRs384Input), Decode(kRs384Signature));

  // An encrypted key is refused, not prompted for on the terminal.
  EXPECT_EQ(ThrowReason([] { Key::FromPem(kA3EncryptedPem, "x"); }),
            "not a PEM key (or an encrypted one)");
  EXPECT_THROW(Key::FromPem("", "x"), std::invalid_argument);
  EXPECT_THROW(Key::FromPem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "x"),
               std::invalid_argument);
}

TEST(JoseKey, KeysAreSharedAcrossThreads) {
  const Key& key = GeneratedKey(kGenerated[2]);
  std::string sig = key.Sign("ES256", "data");
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        good += key.Verify("ES256", "data", sig) ? 1 : 0;
        good += key.Verify("ES256", "data", key.Sign("ES256", "data")) ? 1 : 0;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 200);
}

// ---- JWK ----------------------------------------------------------------------------------------

TEST(JoseJwk, Rfc7515A2KeyReproducesTheExampleSignature) {
  Key priv = Key::FromJwk(kA2Private);
  EXPECT_EQ(priv.kty(), "RSA");
  EXPECT_EQ(priv.kid(), "a2");
  EXPECT_TRUE(priv.has_private());
  std::string token = kA2Token;
  std::string input = token.substr(0, token.rfind('.'));
  std::string rfc_signature = Decode(token.substr(token.rfind('.') + 1));
  EXPECT_EQ(priv.Sign("RS256", input), rfc_signature);

  Key pub = Key::FromJwk(kA2Public);
  EXPECT_FALSE(pub.has_private());
  EXPECT_TRUE(pub.Verify("RS256", input, rfc_signature));
  EXPECT_FALSE(pub.Verify("RS384", input, rfc_signature));

  auto jws = ParseCompact(token);
  ASSERT_TRUE(jws.has_value());
  EXPECT_EQ(jws->alg, "RS256");
  EXPECT_EQ(jws->header_json, R"({"alg":"RS256"})");
  EXPECT_EQ(jws->payload_json,
            "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}");
  EXPECT_TRUE(pub.Verify(jws->alg, jws->signing_input, jws->signature));
}

TEST(JoseJwk, Rfc7515A3KeyVerifiesTheExample) {
  Key pub = Key::FromJwk(A3Jwk(false));
  EXPECT_EQ(pub.kty(), "EC");
  EXPECT_EQ(pub.crv(), "P-256");
  EXPECT_FALSE(pub.has_private());
  auto jws = ParseCompact(kA3Token);
  ASSERT_TRUE(jws.has_value());
  EXPECT_EQ(jws->alg, "ES256");
  EXPECT_EQ(jws->signing_input, std::string("eyJhbGciOiJFUzI1NiJ9.") + kRfcPayload);
  EXPECT_TRUE(pub.Verify(jws->alg, jws->signing_input, jws->signature));
  // r||s, not DER: the same bytes in another framing are refused.
  EXPECT_FALSE(pub.Verify("ES256", jws->signing_input, jws->signature.substr(1)));
  // A signature whose s needed padding to 32 bytes.
  EXPECT_TRUE(pub.Verify("ES256", kShortSInput, Decode(kShortSSignature)));

  // The private half (d checked against x and y on import) signs what the public half checks.
  Key priv = Key::FromJwk(A3Jwk(true));
  EXPECT_TRUE(priv.has_private());
  std::string sig = priv.Sign("ES256", jws->signing_input);
  EXPECT_EQ(sig.size(), 64u);
  EXPECT_TRUE(pub.Verify("ES256", jws->signing_input, sig));
  EXPECT_EQ(pub.PublicJwk(), std::string(R"({"kty":"EC","kid":"a3","use":"sig","alg":"ES256",)") +
                                 R"("crv":"P-256","x":")" + kA3X + R"(","y":")" + kA3Y + "\"}");
}

TEST(JoseJwk, CommandLineVectorsVerify) {
  Key es384 = Key::FromJwk(kEs384Jwk);
  EXPECT_EQ(es384.crv(), "P-384");
  EXPECT_TRUE(es384.Verify("ES384", kEs384Input, Decode(kEs384Signature)));
  EXPECT_FALSE(es384.Verify("ES384", kShortSInput, Decode(kEs384Signature)));

  Key rs384 = Key::FromJwk(std::string(R"({"kty":"RSA","n":")") + kRs384N + R"(","e":"AQAB"})");
  EXPECT_TRUE(rs384.Verify("RS384", kRs384Input, Decode(kRs384Signature)));
  EXPECT_FALSE(rs384.Verify("RS256", kRs384Input, Decode(kRs384Signature)));
}

TEST(JoseJwk, PublicJwkRoundTripsAndVerifiesTheOriginalsSignatures) {
  for (const auto& g : kGenerated) {
    SCOPED_TRACE(g.name);
    const Key& key = GeneratedKey(g);
    std::string jwk = key.PublicJwk();
    rapidjson::Document doc;
    doc.Parse(jwk.c_str());
    ASSERT_TRUE(doc.IsObject()) << jwk;
    EXPECT_STREQ(doc["use"].GetString(), "sig");
    EXPECT_EQ(doc["kid"].GetString(), key.kid());
    for (const char* secret : {"d", "p", "q", "dp", "dq", "qi"})
      EXPECT_FALSE(doc.HasMember(secret)) << secret;

    Key pub = Key::FromJwk(jwk);
    EXPECT_FALSE(pub.has_private());
    EXPECT_EQ(pub.kid(), key.kid());
    EXPECT_EQ(pub.kty(), key.kty());
    EXPECT_EQ(pub.crv(), key.crv());
    EXPECT_EQ(pub.PublicJwk(), jwk);
    EXPECT_TRUE(pub.Verify(g.alg, "data", key.Sign(g.alg, "data")));
    EXPECT_THROW(pub.Sign(g.alg, "data"), std::invalid_argument);
  }
  // The JWK's own alg survives the trip.
  std::string with_alg = kA2Public;
  with_alg.insert(1, R"("alg":"RS384",)");
  Key rs384_only = Key::FromJwk(Key::FromJwk(with_alg).PublicJwk());
  EXPECT_EQ(rs384_only.alg(), "RS384");
  EXPECT_FALSE(rs384_only.Allows("RS256"));
}

TEST(JoseJwk, RefusesKeysTheServerDoesNotAccept) {
  const std::string ec_head = R"({"kty":"EC","crv":"P-256",)";
  const std::string a3_xy = std::string(R"("x":")") + kA3X + R"(","y":")" + kA3Y + "\"";
  const std::string a2_ne = std::string(kA2Public).substr(std::string(kA2Public).find("\"n\""));
  struct Row {
    const char* name;
    std::string jwk;
    std::string reason;
  };
  const Row rows[] = {
      {"missing n", R"({"kty":"RSA","e":"AQAB"})", "JWK lacks n"},
      {"missing e", R"({"kty":"RSA","n":")" + std::string(kRs384N) + "\"}", "JWK lacks e"},
      {"n not base64url", R"({"kty":"RSA","e":"AQAB","n":"ab+c"})", "JWK n is not base64url"},
      {"n padded", R"({"kty":"RSA","e":"AQAB","n":"AQ=="})", "JWK n is not base64url"},
      {"n not a string", R"({"kty":"RSA","e":"AQAB","n":12})", "n is not a string"},
      {"RSA 1024 bits", R"({"kty":"RSA","e":"AQAB","n":")" + std::string(kRsa1024N) + "\"}",
       "RSA key under 2048 bits"},
      {"RSA e even", R"({"kty":"RSA","e":"Ag",)" + a2_ne.substr(0, a2_ne.find(",\"e\"")) + "}",
       "RSA public key is invalid"},
      {"RSA even n", R"({"kty":"RSA","e":"AQAB","n":")" + B64(std::string(256, '\x80')) + "\"}",
       "RSA public key is invalid"},
      {"RSA d without factors", R"({"kty":"RSA","d":"AQAB",)" + a2_ne,
       "RSA private JWK needs all of d, p, q, dp, dq and qi"},
      {"RSA multi-prime", R"({"kty":"RSA","oth":[],)" + a2_ne,
       "multi-prime RSA keys are not supported"},
      {"x of 31 bytes",
       ec_head + R"("x":")" + std::string(kA3X).substr(0, 42) + R"(","y":")" + kA3Y + "\"}",
       "EC x has the wrong length"},
      {"y of 33 bytes",
       ec_head + R"("x":")" + kA3X + R"(","y":")" + B64(std::string(33, '\1')) + "\"}",
       "EC y has the wrong length"},
      {"P-256 x on P-384", R"({"kty":"EC","crv":"P-384",)" + a3_xy + "}",
       "EC x has the wrong length"},
      {"point not on the curve",
       ec_head + R"("x":")" + kA3X + R"(","y":")" + std::string(kA3Y).substr(0, 42) + "4\"}",
       "EC point is not on the curve"},
      {"d of the wrong length", ec_head + a3_xy + R"(,"d":"AQAB"})", "EC d has the wrong length"},
      {"d of another key", ec_head + a3_xy + R"(,"d":")" + B64(std::string(32, '\7')) + "\"}",
       "private key does not match the public key"},
      {"crv P-521", R"({"kty":"EC","crv":"P-521",)" + a3_xy + "}", "unsupported crv"},
      {"crv missing", R"({"kty":"EC",)" + a3_xy + "}", "JWK lacks crv"},
      {"kty oct", R"({"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T"})",
       "unsupported kty"},
      {"kty OKP", R"({"kty":"OKP","crv":"Ed25519","x":"AQAB"})", "unsupported kty"},
      {"kty missing", "{" + a3_xy + "}", "JWK lacks kty"},
      {"use enc", ec_head + R"("use":"enc",)" + a3_xy + "}", "JWK use is not sig"},
      {"key_ops without verify", ec_head + R"("key_ops":["encrypt"],)" + a3_xy + "}",
       "JWK key_ops lacks verify"},
      {"key_ops not an array", ec_head + R"("key_ops":"verify",)" + a3_xy + "}",
       "key_ops is not an array"},
      {"alg HS256", ec_head + R"("alg":"HS256",)" + a3_xy + "}", "unsupported alg"},
      {"alg none", ec_head + R"("alg":"none",)" + a3_xy + "}", "unsupported alg"},
      {"alg RS256 on EC", ec_head + R"("alg":"RS256",)" + a3_xy + "}",
       "alg does not match the key"},
      {"alg ES384 on P-256", ec_head + R"("alg":"ES384",)" + a3_xy + "}",
       "alg does not match the key"},
      {"alg ES256 on RSA", R"({"kty":"RSA","alg":"ES256",)" + a2_ne, "alg does not match the key"},
      {"kid not a string", ec_head + R"("kid":7,)" + a3_xy + "}", "kid is not a string"},
      {"repeated member", ec_head + R"("kty":"RSA",)" + a3_xy + "}", "JWK repeats a member"},
      {"not JSON", "{kty:EC}", "JWK is not a JSON object"},
      {"an array", "[" + A3Jwk(false) + "]", "JWK is not a JSON object"},
      {"trailing text", A3Jwk(false) + "x", "JWK is not a JSON object"},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.name);
    std::string reason = ThrowReason([&] { Key::FromJwk(row.jwk); });
    EXPECT_EQ(reason, row.reason);
    // The reason names the problem, never the material.
    for (const char* material : {kA3X, kA3Y, kRs384N, kRsa1024N, "ofgWCuLjybRlzo0t"})
      EXPECT_EQ(reason.find(std::string(material).substr(0, 12)), std::string::npos);
  }
  // What the refusals leave out is accepted: use sig, key_ops with verify, a fitting alg.
  EXPECT_NO_THROW(
      Key::FromJwk(ec_head + R"("use":"sig","key_ops":["verify"],"alg":"ES256",)" + a3_xy + "}"));
}

// ---- JWKS ---------------------------------------------------------------------------------------

TEST(JoseJwks, SkipsBadKeysAndFindsByKid) {
  std::string deep = R"({"kty":"EC","kid":"deep","x5c":[[[[[[[[[["x"]]]]]]]]]]})";
  std::string jwks = "{\"keys\":[" + A3Jwk(false) + "," + kA2Public + "," +
                     R"({"kty":"RSA","kid":"weak","e":"AQAB","n":")" + kRsa1024N + "\"}," +
                     R"(42,{"kty":"oct","kid":"hmac","k":"AAAA"},)" + deep + "," + kEs384Jwk + "]}";
  KeySet set = ParseJwks(jwks);
  ASSERT_EQ(set.keys.size(), 3u);
  EXPECT_EQ(set.skipped, (std::vector<std::string>{
                             "keys[2]: RSA key under 2048 bits", "keys[3]: not a JSON object",
                             "keys[4]: unsupported kty", "keys[5]: nested too deeply"}));
  struct Row {
    const char* kid;
    const char* kty;  // nullptr: absent
  };
  const Row rows[] = {{"a3", "EC"},      {"a2", "RSA"},     {"p384", "EC"}, {"weak", nullptr},
                      {"hmac", nullptr}, {"nope", nullptr}, {"", nullptr}};
  for (const auto& row : rows) {
    const Key* key = set.Find(row.kid);
    if (!row.kty) {
      EXPECT_EQ(key, nullptr) << row.kid;
      continue;
    }
    ASSERT_NE(key, nullptr) << row.kid;
    EXPECT_EQ(key->kty(), row.kty);
  }
  EXPECT_TRUE(set.Find("a3")->Verify("ES256", ParseCompact(kA3Token)->signing_input,
                                     ParseCompact(kA3Token)->signature));
}

TEST(JoseJwks, RefusesDocumentsWithoutAKeysArray) {
  for (const char* text : {"", "[]", "{}", R"({"keys":{}})", R"({"keys":"x"})", "{\"keys\":[]"})
    EXPECT_THROW(ParseJwks(text), std::invalid_argument) << text;
  EXPECT_TRUE(ParseJwks(R"({"keys":[]})").keys.empty());
}

TEST(JoseJwks, JwksJsonRoundTrips) {
  Key a3 = Key::FromJwk(A3Jwk(true));
  Key a2 = Key::FromJwk(kA2Private);
  std::string text = JwksJson({&a3, nullptr, &a2});
  EXPECT_EQ(text.find("\"d\""), std::string::npos) << "public halves only";
  KeySet set = ParseJwks(text);
  EXPECT_TRUE(set.skipped.empty());
  ASSERT_EQ(set.keys.size(), 2u);
  EXPECT_FALSE(set.Find("a3")->has_private());
  EXPECT_TRUE(set.Find("a2")->Verify("RS256", "x", a2.Sign("RS256", "x")));
  EXPECT_EQ(JwksJson({}), R"({"keys":[]})");
}

// ---- compact JWS --------------------------------------------------------------------------------

TEST(JoseCompact, SignCompactRoundTrips) {
  for (const auto& g : kGenerated) {
    SCOPED_TRACE(g.name);
    const Key& key = GeneratedKey(g);
    std::string token = SignCompact(key, g.alg, R"({"sub":"42"})");
    std::string error;
    auto jws = ParseCompact(token, &error);
    ASSERT_TRUE(jws.has_value()) << error;
    EXPECT_EQ(jws->header_json, std::string(R"({"alg":")") + g.alg + R"(","kid":")" + key.kid() +
                                    R"(","typ":"JWT"})");
    EXPECT_EQ(jws->alg, g.alg);
    EXPECT_EQ(jws->kid, key.kid());
    EXPECT_EQ(jws->typ, "JWT");
    EXPECT_EQ(jws->payload_json, R"({"sub":"42"})");
    EXPECT_EQ(jws->signing_input, token.substr(0, token.rfind('.')));
    EXPECT_TRUE(key.Verify(jws->alg, jws->signing_input, jws->signature));

    // Another payload under the same signature fails.
    std::string forged =
        B64(jws->header_json) + "." + B64(R"({"sub":"43"})") + token.substr(token.rfind('.'));
    auto forged_jws = ParseCompact(forged);
    ASSERT_TRUE(forged_jws.has_value());
    EXPECT_FALSE(key.Verify(forged_jws->alg, forged_jws->signing_input, forged_jws->signature));
  }
  // A kid is escaped, not spliced into the header.
  Key odd = Key::Generate("EC", "P-256", "a\"b\\c");
  auto jws = ParseCompact(SignCompact(odd, "ES256", "{}"));
  ASSERT_TRUE(jws.has_value());
  EXPECT_EQ(jws->kid, "a\"b\\c");
  EXPECT_THROW(SignCompact(odd, "ES256", "[]"), std::invalid_argument);
}

TEST(JoseCompact, RefusesMalformedTokens) {
  const std::string ok_header = B64(R"({"alg":"ES256"})");
  const std::string ok_payload = B64(R"({"sub":"42"})");
  auto token = [&](const std::string& header_json,
                   const std::string& payload_json = R"({"sub":"42"})") {
    return B64(header_json) + "." + B64(payload_json) + ".c2ln";
  };
  struct Row {
    const char* name;
    std::string token;
    std::string reason;
  };
  const Row rows[] = {
      {"empty", "", "not three parts"},
      {"two parts", ok_header + "." + ok_payload, "not three parts"},
      {"four parts", ok_header + "." + ok_payload + ".c2ln.c2ln", "not three parts"},
      {"header bad base64", "eyJ+bGciOiJFUzI1NiJ9." + ok_payload + ".c2ln",
       "header is not base64url"},
      {"payload padded", ok_header + "." + ok_payload + "==.c2ln", "payload is not base64url"},
      {"signature with '/'", ok_header + "." + ok_payload + ".c2/u", "signature is not base64url"},
      {"header an array", token("[1]"), "header is not a JSON object"},
      {"header a string", token("\"alg\""), "header is not a JSON object"},
      {"header not JSON", token("{alg:ES256}"), "header is not a JSON object"},
      {"header not UTF-8", token("{\"alg\":\"ES256\",\"kid\":\"\xff\"}"),
       "header is not a JSON object"},
      {"header deeply nested", token(std::string(5000, '[') + std::string(5000, ']')),
       "header is not a JSON object"},
      {"crit present", token(R"({"alg":"ES256","crit":["exp"],"exp":1})"),
       "crit header not supported"},
      {"crit empty", token(R"({"alg":"ES256","crit":[]})"), "crit header not supported"},
      {"alg missing", token(R"({"typ":"JWT"})"), "alg missing or not a string"},
      {"alg a number", token(R"({"alg":256})"), "alg missing or not a string"},
      {"alg repeated", token(R"({"alg":"ES256","alg":"none"})"), "header repeats a member"},
      {"kid a number", token(R"({"alg":"ES256","kid":1})"), "kid not a string"},
      {"typ null", token(R"({"alg":"ES256","typ":null})"), "typ not a string"},
      {"payload an array", token(R"({"alg":"ES256"})", "[]"), "payload is not a JSON object"},
      {"payload not JSON", token(R"({"alg":"ES256"})", "sub=42"), "payload is not a JSON object"},
      {"payload not UTF-8", token(R"({"alg":"ES256"})", "{\"sub\":\"\xc3\"}"),
       "payload is not a JSON object"},
      {"payload empty", ok_header + "..c2ln", "payload is not a JSON object"},
      {"oversized payload", ok_header + "." + std::string(16 * 1024 + 1, 'A') + ".c2ln",
       "part over 16 KiB"},
      {"oversized signature", ok_header + "." + ok_payload + "." + std::string(16 * 1024 + 4, 'A'),
       "part over 16 KiB"},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.name);
    std::string error;
    EXPECT_FALSE(ParseCompact(row.token, &error).has_value());
    EXPECT_EQ(error, row.reason);
    EXPECT_FALSE(ParseCompact(row.token).has_value()) << "error is optional";
  }
  auto utf8 = ParseCompact(token("{\"alg\":\"ES256\",\"kid\":\"cl\xc3\xa9\"}"));
  ASSERT_TRUE(utf8.has_value());
  EXPECT_EQ(utf8->kid, "cl\xc3\xa9");
}

TEST(JoseCompact, AcceptsPartsOfExactly16KiB) {
  // 12288 bytes encode to exactly 16384 characters.
  std::string payload = R"({"p":")" + std::string(12288 - 8, 'x') + "\"}";
  ASSERT_EQ(B64(payload).size(), 16u * 1024);
  std::string error;
  auto jws = ParseCompact(B64(R"({"alg":"ES256"})") + "." + B64(payload) + ".", &error);
  ASSERT_TRUE(jws.has_value()) << error;
  EXPECT_EQ(jws->payload_json, payload);
  EXPECT_EQ(jws->signature, "") << "an empty signature parses; Verify refuses it";
  EXPECT_EQ(jws->kid, "");
  EXPECT_EQ(jws->typ, "");
}

}  // namespace
}  // namespace fls::server::jose
