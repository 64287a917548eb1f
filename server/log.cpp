#include "server/log.h"

#include <cstdio>
#include <mutex>

#include "fhir/fhir_date.h"

namespace fls::server {

namespace {
std::mutex g_log_mu;

void Quote(std::string& out, const std::string& s) {
  out.push_back('"');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
}
}  // namespace

void Log(const char* level, const std::string& message, std::initializer_list<LogField> fields) {
  std::string line = "{\"ts\":";
  Quote(line, fhir::FormatFhirInstant(fhir::NowMicros()));
  line += ",\"level\":";
  Quote(line, level);
  line += ",\"msg\":";
  Quote(line, message);
  for (const auto& [k, v] : fields) {
    line += ",";
    Quote(line, k);
    line += ":";
    Quote(line, v);
  }
  line += "}\n";
  std::lock_guard lock(g_log_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace fls::server
