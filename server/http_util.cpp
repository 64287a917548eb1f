#include "server/http_util.h"

#include <zlib.h>

#include <cctype>
#include <stdexcept>

#include "fhir/text.h"

namespace fls::server {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string PercentEncode(std::string_view text, std::string_view also_keep) {
  static const char* kDigits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || also_keep.find(static_cast<char>(c)) != std::string_view::npos) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kDigits[c >> 4];
      out += kDigits[c & 15];
    }
  }
  return out;
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// q of one Accept-Encoding member's parameters ("q=0.5"); 1 when absent, 0 when unreadable.
double Quality(std::string_view params) {
  while (!params.empty()) {
    size_t semi = params.find(';');
    std::string_view p = Trim(params.substr(0, semi));
    params = semi == std::string_view::npos ? std::string_view{} : params.substr(semi + 1);
    if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
      std::string_view v = p.substr(2);
      if (v.empty() || v.size() > 5) return 0;
      double q = 0, scale = 1;
      bool dot = false;
      for (char c : v) {
        if (c == '.' && !dot) {
          dot = true;
        } else if (c >= '0' && c <= '9') {
          if (dot) {
            scale /= 10;
            q += (c - '0') * scale;
          } else {
            q = q * 10 + (c - '0');
          }
        } else {
          return 0;
        }
      }
      return q > 1 ? 1 : q;
    }
  }
  return 1;
}

bool TokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
         c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' ||
         c == '+' || c == '^' || c == '`' || c == '|' || c == '~';
}

}  // namespace

std::optional<std::string> RepairRequestLine(std::string_view line) {
  size_t first = line.find(' ');
  size_t last = line.rfind(" HTTP/");
  if (first == std::string_view::npos || last == std::string_view::npos || last <= first)
    return std::nullopt;
  std::string_view target = line.substr(first + 1, last - first - 1);
  if (target.find(' ') == std::string_view::npos) return std::nullopt;
  std::string out(line.substr(0, first + 1));
  for (char c : target) {
    if (c == ' ') {
      out += "%20";
    } else {
      out += c;
    }
  }
  out += line.substr(last);
  return out;
}

std::string_view RawHeaderValue(std::string_view raw, std::string_view lower_name) {
  size_t pos = raw.find('\n');
  while (pos != std::string_view::npos && pos + 1 < raw.size()) {
    std::string_view line = raw.substr(pos + 1);
    size_t end = line.find('\n');
    if (end != std::string_view::npos) line = line.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) return {};  // end of the header
    if (line.size() > lower_name.size() && line[lower_name.size()] == ':' &&
        IEquals(line.substr(0, lower_name.size()), lower_name)) {
      return Trim(line.substr(lower_name.size() + 1));
    }
    pos = raw.find('\n', pos + 1);
  }
  return {};
}

std::string SafeRequestId(std::string_view v) {
  bool ok = !v.empty() && v.size() <= 64;
  for (char c : v) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_' || c == '.');
  }
  return ok ? std::string(v) : fhir::NewUuid();
}

bool SafeHost(std::string_view host) {
  if (host.empty() || host.size() > 255) return false;
  for (char c : host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
    if (!ok) return false;
  }
  return true;
}

bool AcceptsGzip(std::string_view header) {
  std::optional<double> gzip, any;
  while (!header.empty()) {
    size_t comma = header.find(',');
    std::string_view member = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    size_t semi = member.find(';');
    std::string_view coding = Trim(member.substr(0, semi));
    double q = semi == std::string_view::npos ? 1 : Quality(member.substr(semi + 1));
    if (IEquals(coding, "gzip") || IEquals(coding, "x-gzip")) {
      gzip = q;
    } else if (coding == "*") {
      any = q;
    }
  }
  if (gzip) return *gzip > 0;
  return any && *any > 0;
}

std::string Gzip(std::string_view data) {
  z_stream zs{};
  // windowBits 15 + 16: a gzip header and trailer; level 1: JSON compresses well even so, and
  // the CPU goes to the requests.
  if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(data.size())));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  size_t written = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate failed");
  out.resize(written);
  return out;
}

CorsPolicy::CorsPolicy(std::string_view origins) {
  while (!origins.empty()) {
    size_t comma = origins.find(',');
    std::string_view o = Trim(origins.substr(0, comma));
    origins = comma == std::string_view::npos ? std::string_view{} : origins.substr(comma + 1);
    while (!o.empty() && o.back() == '/') o.remove_suffix(1);
    if (o == "*") {
      any_ = true;
    } else if (!o.empty()) {
      origins_.emplace(o);
    }
  }
}

bool CorsPolicy::Allows(std::string_view origin) const {
  if (origin.empty() || origin.size() > 255 || origin == "null") return false;
  for (char c : origin) {
    if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e) return false;
  }
  return any_ || origins_.count(origin) > 0;
}

std::string SafeHeaderList(std::string_view value) {
  if (value.size() > 1024) return "";
  for (char c : value) {
    if (!(TokenChar(c) || c == ',' || c == ' ')) return "";
  }
  return std::string(Trim(value));
}

}  // namespace fls::server
