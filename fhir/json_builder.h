#pragma once
// A small streaming writer for the resources the server makes itself (cases, Tasks, Consents,
// orders, Flags): chained calls that read like the resource. Not thread-safe (one per resource).

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string>

#include "fhir/json.h"

namespace fls::fhir {

class Json {
 public:
  Json() : w_(sb_) {}
  Json& Obj() { w_.StartObject(); return *this; }
  Json& End() { w_.EndObject(); return *this; }
  Json& Arr(const char* k) { w_.Key(k); w_.StartArray(); return *this; }
  Json& EndArr() { w_.EndArray(); return *this; }
  Json& Key(const char* k) { w_.Key(k); return *this; }
  Json& S(const char* k, const std::string& v) {
    w_.Key(k);
    w_.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
    return *this;
  }
  Json& B(const char* k, bool v) { w_.Key(k); w_.Bool(v); return *this; }
  Json& Val(const std::string& v) {
    w_.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
    return *this;
  }
  Json& I(const char* k, int v) { w_.Key(k); w_.Int(v); return *this; }
  // A decimal as its text (e.g. a threshold from the data files), kept exact.
  Json& Num(const char* k, double v) { w_.Key(k); w_.Double(v); return *this; }
  Json& Ref(const char* k, const std::string& ref) { return Key(k).Obj().S("reference", ref).End(); }
  Json& Coding(const std::string& system, const std::string& code, const std::string& display = "") {
    Obj().S("system", system).S("code", code);
    if (!display.empty()) S("display", display);
    return End();
  }
  Json& Concept(const char* k, const std::string& system, const std::string& code,
                const std::string& display = "") {
    Key(k).Obj().Arr("coding").Coding(system, code, display).EndArr().End();
    return *this;
  }
  JsonDoc Doc() { return ParseJson(std::string_view(sb_.GetString(), sb_.GetSize())); }

 private:
  rapidjson::StringBuffer sb_;
  rapidjson::Writer<rapidjson::StringBuffer> w_;
};

}  // namespace fls::fhir
