#include "workflow/ucum.h"

#include <array>
#include <cmath>
#include <string>

namespace fls::workflow {

namespace {

// Dimensions: mass, amount of substance, volume, time, international units, enzyme units,
// equivalents. Volume is its own dimension here (labs never mix it with length).
using Dims = std::array<int, 7>;

struct Unit {
  double scale = 1;
  Dims dims{};
};

struct Atom {
  std::string_view code;
  double scale;
  int dim;  // index into Dims, or -1 for a dimensionless number
};
constexpr Atom kAtoms[] = {
    {"g", 1, 0},    {"mol", 1, 1},  {"L", 1, 2},     {"l", 1, 2},    {"s", 1, 3},
    {"min", 60, 3}, {"h", 3600, 3}, {"d", 86400, 3}, {"[IU]", 1, 4}, {"[iU]", 1, 4},
    {"U", 1, 5},    {"eq", 1, 6},   {"%", 0.01, -1}, {"1", 1, -1},
};

struct Prefix {
  std::string_view code;
  double factor;
};
constexpr Prefix kPrefixes[] = {{"da", 1e1}, {"k", 1e3},  {"h", 1e2},  {"d", 1e-1},  {"c", 1e-2},
                                {"m", 1e-3}, {"u", 1e-6}, {"n", 1e-9}, {"p", 1e-12}, {"f", 1e-15}};

const Atom* FindAtom(std::string_view s) {
  for (const auto& a : kAtoms) {
    if (a.code == s) return &a;
  }
  return nullptr;
}

// One term: [prefix]atom[exponent]. Adds it to `u` with the sign `sign` (-1 in a denominator).
bool AddTerm(std::string_view term, int sign, Unit& u) {
  if (term.empty()) return false;
  int exponent = 1;
  size_t digits = term.size();
  while (digits > 0 && term[digits - 1] >= '0' && term[digits - 1] <= '9') --digits;
  std::string_view body = term;
  if (digits > 0 && digits < term.size() && term != "1") {
    exponent = std::stoi(std::string(term.substr(digits)));
    body = term.substr(0, digits);
    if (!body.empty() && body.back() == '-') {
      exponent = -exponent;
      body.remove_suffix(1);
    }
  }
  double factor = 1;
  const Atom* atom = FindAtom(body);
  if (!atom) {
    for (const auto& p : kPrefixes) {
      if (body.size() > p.code.size() && body.substr(0, p.code.size()) == p.code) {
        if (const Atom* a = FindAtom(body.substr(p.code.size())); a && a->dim >= 0) {
          atom = a;
          factor = p.factor;
          break;
        }
      }
    }
  }
  if (!atom) return false;
  int power = sign * exponent;
  u.scale *= std::pow(atom->scale * factor, power);
  if (atom->dim >= 0) u.dims[static_cast<size_t>(atom->dim)] += power;
  return true;
}

std::optional<Unit> Parse(std::string_view text) {
  // Annotations are 1; common non-UCUM spellings are mapped.
  std::string s;
  int depth = 0;
  for (char c : text) {
    if (c == '{') {
      ++depth;
      continue;
    }
    if (c == '}') {
      if (depth == 0) return std::nullopt;
      // An annotation standing as a term of its own ("/{1.73_m2}", "{ratio}") is the unit 1;
      // one attached to an atom ("mg{creat}") only comments it.
      if (--depth == 0 && (s.empty() || s.back() == '/' || s.back() == '.')) s += '1';
      continue;
    }
    if (depth == 0 && c != ' ') s += c;
  }
  if (depth != 0) return std::nullopt;
  for (auto [from, to] :
       {std::pair<std::string_view, std::string_view>{"IU", "[IU]"}, {"mcg", "ug"}}) {
    for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
      if (from == "IU" && pos > 0 && s[pos - 1] == '[') continue;
      s.replace(pos, from.size(), to);
    }
  }
  Unit u;
  if (s.empty()) return std::nullopt;
  int sign = 1;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == '/' || s[i] == '.') {
      std::string_view term(s.data() + start, i - start);
      // A leading "/" (UCUM allows "/min") leaves an empty numerator: 1.
      if (!(term.empty() && i == 0 && i < s.size() && s[i] == '/')) {
        if (term.empty() && !(start == 0 && i == 0)) return std::nullopt;
        if (!term.empty() && !AddTerm(term, sign, u)) return std::nullopt;
      }
      // UCUM is left-associative: a/b.c is (a/b).c, so only the term right after "/" divides.
      if (i < s.size()) sign = s[i] == '/' ? -1 : 1;
      start = i + 1;
    }
  }
  return u;
}

}  // namespace

std::optional<double> ConvertUcum(double value, std::string_view from, std::string_view to) {
  auto a = Parse(from);
  auto b = Parse(to);
  if (!a || !b || a->dims != b->dims) return std::nullopt;
  return value * a->scale / b->scale;
}

bool IsKnownUcum(std::string_view unit) { return Parse(unit).has_value(); }

}  // namespace fls::workflow
