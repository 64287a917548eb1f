#pragma once
// One-line JSON logs on stderr. Safe across threads (lines never interleave). Patient data never
// goes in a log line: request paths are logged without their query string.

#include <initializer_list>
#include <string>
#include <utility>

namespace fls::server {

using LogField = std::pair<const char*, std::string>;

void Log(const char* level, const std::string& message, std::initializer_list<LogField> fields = {});

}  // namespace fls::server
