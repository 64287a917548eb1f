#pragma once
// Reading the project's data files from unit tests (FLS_SOURCE_DIR is the source tree).

#include <fstream>
#include <sstream>
#include <string>

namespace fls::test {

inline std::string ReadSourceFile(const std::string& relative_path) {
  std::ifstream in(std::string(FLS_SOURCE_DIR) + "/" + relative_path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace fls::test
