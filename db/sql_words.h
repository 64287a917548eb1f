#pragma once
// Lists bound to a statement as one text parameter of space-separated words (read back in SQL by
// string_to_array(:p, ' ')): ids never hold a space, so a word with one, or an empty one, is
// dropped rather than split into two.

#include <string>
#include <vector>

namespace fls::db {

inline std::string JoinWords(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& s : words) {
    if (s.empty() || s.find(' ') != std::string::npos) continue;
    out += (out.empty() ? "" : " ") + s;
  }
  return out;
}

inline std::vector<std::string> SplitWords(const std::string& text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find(' ', i);
    if (j == std::string::npos) j = text.size();
    if (j > i) out.push_back(text.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

}  // namespace fls::db
