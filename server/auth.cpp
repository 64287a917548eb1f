#include "server/auth.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "fhir/error.h"
#include "server/log.h"

namespace fls::server {

namespace {

using fhir::ErrorCode;
using fhir::FhirError;

const std::set<std::string, std::less<>>& ConformanceTypes() {
  // What the server publishes about itself and the knowledge it runs on: readable by every role.
  static const std::set<std::string, std::less<>> k = {
      "CapabilityStatement", "OperationDefinition", "SearchParameter", "StructureDefinition", "CodeSystem",
      "ValueSet",            "ConceptMap",          "PlanDefinition",  "ActivityDefinition",  "Library",
      "NamingSystem",        "Questionnaire",       "Measure"};
  return k;
}
const std::set<std::string, std::less<>>& DirectoryTypes() {
  // Sites and places: no patient data.
  static const std::set<std::string, std::less<>> k = {"Organization", "Location", "HealthcareService", "Endpoint"};
  return k;
}
const std::set<std::string, std::less<>>& CoordinatorWrites() {
  // What a coordinator writes directly (the pathway's own writes go through the operations).
  static const std::set<std::string, std::less<>> k = {
      "Task", "Communication", "CommunicationRequest", "Consent", "Observation", "ServiceRequest",
      "Flag", "QuestionnaireResponse", "Patient", "DocumentReference"};
  return k;
}

constexpr uint8_t kReadSearch = kRead | kSearch;

std::string RandomHex(size_t bytes) {
  std::random_device rd;
  std::string out;
  static const char* hex = "0123456789abcdef";
  for (size_t i = 0; i < bytes; ++i) {
    unsigned v = rd() & 0xff;
    out += hex[v >> 4];
    out += hex[v & 15];
  }
  return out;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes `text` to `path` atomically (a temporary file renamed over it), mode 0600.
void WriteAtomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp-" + RandomHex(6);
  {
    // Created 0600 from the start: never readable by others, not even for a moment.
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("cannot write " + tmp);
    std::FILE* f = ::fdopen(fd, "wb");
    if (!f) {
      ::close(fd);
      throw std::runtime_error("cannot write " + tmp);
    }
    bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    ok = std::fflush(f) == 0 && ok;
    ok = ::fsync(::fileno(f)) == 0 && ok;
    std::fclose(f);
    if (!ok) {
      std::remove(tmp.c_str());
      throw std::runtime_error("cannot write " + tmp);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot rename " + tmp + " to " + path);
  }
}

std::string JsonEscape(std::string_view s) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  return std::string(sb.GetString(), sb.GetSize());
}

std::string StrMember(const rapidjson::Value& o, const char* name) {
  if (!o.IsObject()) return {};
  auto it = o.FindMember(name);
  if (it == o.MemberEnd() || !it->value.IsString()) return {};
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

std::optional<int64_t> IntMember(const rapidjson::Value& o, const char* name) {
  if (!o.IsObject()) return std::nullopt;
  auto it = o.FindMember(name);
  if (it == o.MemberEnd() || !it->value.IsNumber()) return std::nullopt;
  if (it->value.IsInt64()) return it->value.GetInt64();
  double d = it->value.GetDouble();
  if (d != d || d > 9e15 || d < -9e15) return std::nullopt;
  return static_cast<int64_t>(d);
}

std::vector<std::string> StrArray(const rapidjson::Value& o, const char* name) {
  std::vector<std::string> out;
  if (!o.IsObject()) return out;
  auto it = o.FindMember(name);
  if (it == o.MemberEnd()) return out;
  if (it->value.IsString()) {
    out.emplace_back(it->value.GetString(), it->value.GetStringLength());
  } else if (it->value.IsArray()) {
    for (const auto& v : it->value.GetArray()) {
      if (v.IsString()) out.emplace_back(v.GetString(), v.GetStringLength());
    }
  }
  return out;
}

FhirError Unauthorized(const std::string& why, const char* error = "invalid_token") {
  FhirError e(ErrorCode::kUnauthorized, why);
  e.headers.emplace_back("WWW-Authenticate", std::string("Bearer realm=\"fls\", error=\"") + error +
                                                 "\", error_description=\"" + why + "\"");
  return e;
}

}  // namespace

const char* RoleName(Role r) {
  switch (r) {
    case Role::kEhr: return "ehr";
    case Role::kCoordinator: return "coordinator";
    case Role::kQuality: return "quality";
    case Role::kAdmin: return "admin";
  }
  return "ehr";
}

std::optional<Role> ParseRole(std::string_view name) {
  for (Role r : {Role::kEhr, Role::kCoordinator, Role::kQuality, Role::kAdmin}) {
    if (name == RoleName(r)) return r;
  }
  return std::nullopt;
}

bool IsPractitionerReference(std::string_view ref) {
  constexpr std::string_view kPrefix = "Practitioner/";
  if (ref.substr(0, kPrefix.size()) != kPrefix) return false;
  std::string_view id = ref.substr(kPrefix.size());
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  }
  return true;
}

std::optional<Scope> ParseScope(std::string_view text) {
  auto slash = text.find('/');
  auto dot = text.rfind('.');
  if (slash == std::string_view::npos || dot == std::string_view::npos || dot < slash) return std::nullopt;
  Scope s;
  s.text = std::string(text);
  s.context = std::string(text.substr(0, slash));
  if (s.context != "system" && s.context != "user" && s.context != "patient") return std::nullopt;
  s.type = std::string(text.substr(slash + 1, dot - slash - 1));
  if (s.type.empty()) return std::nullopt;
  if (s.type != "*") {
    if (s.type[0] < 'A' || s.type[0] > 'Z') return std::nullopt;
    for (char c : s.type) {
      if (!std::isalpha(static_cast<unsigned char>(c))) return std::nullopt;
    }
  }
  std::string_view what = text.substr(dot + 1);
  if (what == "read") s.interactions = kRead | kSearch;
  else if (what == "write") s.interactions = kCreate | kUpdate | kDelete;
  else if (what == "*") s.interactions = kAllInteractions;
  else {
    // SMART v2: a non-empty subset of "cruds", in that order.
    static const char kOrder[] = "cruds";
    static const uint8_t kBits[] = {kCreate, kRead, kUpdate, kDelete, kSearch};
    size_t at = 0;
    if (what.empty()) return std::nullopt;
    for (char c : what) {
      while (at < 5 && kOrder[at] != c) ++at;
      if (at == 5) return std::nullopt;  // unknown letter, repeated or out of order; or a ?query
      s.interactions |= kBits[at];
      ++at;
    }
  }
  return s;
}

std::vector<Scope> ParseScopes(std::string_view text, std::vector<std::string>* refused) {
  std::vector<Scope> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    size_t j = text.find(' ', i);
    if (j == std::string_view::npos) j = text.size();
    if (j > i) {
      auto one = text.substr(i, j - i);
      if (auto s = ParseScope(one)) out.push_back(std::move(*s));
      else if (refused) refused->emplace_back(one);
    }
    i = j;
  }
  return out;
}

uint8_t RoleCeiling(Role role, std::string_view type) {
  if (type == "AuditEvent") return role == Role::kAdmin ? kReadSearch : 0;  // never written by the API
  const bool conformance = ConformanceTypes().count(type) > 0;
  const bool directory = DirectoryTypes().count(type) > 0;
  switch (role) {
    case Role::kAdmin:
      return kAllInteractions;
    case Role::kEhr:
      if (conformance) return kReadSearch;
      if (type == "MeasureReport") return 0;
      return kAllInteractions;
    case Role::kCoordinator:
      if (conformance || directory || type == "MeasureReport") return kReadSearch;
      if (CoordinatorWrites().count(type)) return kCreate | kRead | kUpdate | kSearch;
      // Who is in charge of a case (careManager, team): the only update a coordinator makes to
      // it (RequestInfo::case_members_editable); it moves through the operations.
      if (type == "EpisodeOfCare") return kReadSearch | kUpdate;
      return kReadSearch;
    case Role::kQuality:
      // Measures and their reports, the sites, the published knowledge: never a patient's data.
      if (conformance || directory) return kReadSearch;
      if (type == "MeasureReport") return kCreate | kReadSearch;
      return 0;
  }
  return 0;
}

std::string DefaultScopes(Role role) {
  switch (role) {
    case Role::kAdmin: return "system/*.cruds";
    case Role::kEhr: return "system/*.cruds";
    case Role::kCoordinator: return "system/*.crus";
    case Role::kQuality: return "system/*.rs system/MeasureReport.crs";  // the ceiling keeps it to its types
  }
  return "";
}

bool RoleMayCall(Role role, std::string_view op) {
  static const std::set<std::string, std::less<>> kPathway = {"event", "events", "contact", "accompany",
                                                                "recommend", "call-list"};
  static const std::set<std::string, std::less<>> kQuality = {"evaluate-measure", "fls-extract", "fls-dashboard",
                                                               "fls-projection"};
  if (role == Role::kAdmin) return true;
  // Bulk export: the warehouse (quality: the types it may read, never patient data) and
  // administrators; a coordinator works case by case.
  if (op == "export") return role == Role::kQuality;
  if (role == Role::kCoordinator) return kPathway.count(op) > 0 || kQuality.count(op) > 0;
  if (role == Role::kQuality) return kQuality.count(op) > 0;
  return false;
}

bool Principal::May(std::string_view type, uint8_t interaction) const {
  if ((RoleCeiling(role, type) & interaction) != interaction) return false;
  return ScopesAllow(type, interaction);
}

bool Principal::ScopesAllow(std::string_view type, uint8_t interaction) const {
  for (const auto& s : scopes) {
    if (s.context == "patient") continue;
    if ((s.type == "*" || s.type == type) && (s.interactions & interaction) == interaction) return true;
  }
  return false;
}

std::string InteractionLetters(uint8_t i) {
  std::string out;
  if (i & kCreate) out += 'c';
  if (i & kRead) out += 'r';
  if (i & kUpdate) out += 'u';
  if (i & kDelete) out += 'd';
  if (i & kSearch) out += 's';
  return out;
}

std::string Access::Describe() const {
  const auto letters = InteractionLetters;
  switch (kind) {
    case Kind::kUndeclared: return "undeclared";
    case Kind::kPublic: return "public";
    case Kind::kData: return (type.empty() ? std::string("{type}") : type) + " " + letters(interaction);
    case Kind::kBundle: return "each entry";
    case Kind::kOperation: return "operation " + operation + " (" + (type.empty() ? "{type}" : type) + " " + letters(interaction) + ")";
    case Kind::kAdmin: return "admin";
    case Kind::kAuthenticated: return "authenticated";
  }
  return "undeclared";
}

// ------------------------------------------------------------------------------- clients file

ClientRegistry::ClientRegistry(std::string path) : path_(std::move(path)) {}

std::vector<RegisteredClient> ClientRegistry::Load(const std::string& path) {
  std::vector<RegisteredClient> out;
  std::string text = ReadWhole(path);
  if (text.empty()) return out;
  rapidjson::Document d;
  d.Parse(text.c_str(), text.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("clients") || !d["clients"].IsArray()) {
    throw std::invalid_argument(path + ": expected {\"clients\": [...]}");
  }
  for (const auto& c : d["clients"].GetArray()) {
    RegisteredClient rc;
    rc.client_id = StrMember(c, "client_id");
    rc.name = StrMember(c, "name");
    auto role = ParseRole(StrMember(c, "role"));
    if (rc.client_id.empty() || !role) throw std::invalid_argument(path + ": each client needs client_id and a role");
    rc.role = *role;
    rc.scope = StrMember(c, "scope");
    rc.sites = StrArray(c, "sites");
    if (c.HasMember("jwks") && c["jwks"].IsObject()) {
      rapidjson::StringBuffer sb;
      rapidjson::Writer<rapidjson::StringBuffer> w(sb);
      c["jwks"].Accept(w);
      rc.jwks_json.assign(sb.GetString(), sb.GetSize());
      rc.keys = std::make_shared<jose::KeySet>(jose::ParseJwks(rc.jwks_json));
    } else {
      rc.keys = std::make_shared<jose::KeySet>();
    }
    out.push_back(std::move(rc));
  }
  return out;
}

namespace {
void WriteClients(const std::string& path, const std::vector<RegisteredClient>& clients);
}  // namespace

void ClientRegistry::Save(const std::string& path, const RegisteredClient& client) {
  auto clients = Load(path);
  bool replaced = false;
  for (auto& c : clients) {
    if (c.client_id == client.client_id) {
      c = client;
      replaced = true;
    }
  }
  if (!replaced) clients.push_back(client);
  WriteClients(path, clients);
}

namespace {
void WriteClients(const std::string& path, const std::vector<RegisteredClient>& clients) {
  std::string text = "{\n  \"clients\": [";
  for (size_t i = 0; i < clients.size(); ++i) {
    const auto& c = clients[i];
    text += i ? ",\n    {" : "\n    {";
    text += "\"client_id\": " + JsonEscape(c.client_id) + ", \"name\": " + JsonEscape(c.name) +
            ", \"role\": " + JsonEscape(RoleName(c.role));
    if (!c.scope.empty()) text += ", \"scope\": " + JsonEscape(c.scope);
    text += ", \"sites\": [";
    for (size_t s = 0; s < c.sites.size(); ++s) text += (s ? ", " : "") + JsonEscape(c.sites[s]);
    text += "], \"jwks\": " + (c.jwks_json.empty() ? std::string("{\"keys\": []}") : c.jwks_json) + "}";
  }
  text += "\n  ]\n}\n";
  WriteAtomically(path, text);
}
}  // namespace

bool ClientRegistry::Remove(const std::string& path, const std::string& client_id) {
  auto clients = Load(path);
  auto before = clients.size();
  clients.erase(std::remove_if(clients.begin(), clients.end(),
                               [&](const RegisteredClient& c) { return c.client_id == client_id; }),
                clients.end());
  if (clients.size() == before) return false;
  WriteClients(path, clients);
  return true;
}

void ClientRegistry::ReloadIfChanged() {
  int64_t now = NowMs();
  if (now - checked_at_ms_ < 1000 && mtime_ns_ != -1) return;
  checked_at_ms_ = now;
  struct stat st {};
  // The file is replaced by a rename, so a new inode says "changed" even within one mtime tick.
  int64_t mtime = ::stat(path_.c_str(), &st) == 0
                      ? (static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec) ^
                            (static_cast<int64_t>(st.st_ino) << 20) ^ static_cast<int64_t>(st.st_size)
                      : 0;
  if (mtime == mtime_ns_) return;
  std::map<std::string, std::shared_ptr<const RegisteredClient>> next;
  for (auto& c : Load(path_)) {
    std::string id = c.client_id;
    next[id] = std::make_shared<RegisteredClient>(std::move(c));
  }
  clients_ = std::move(next);
  mtime_ns_ = mtime;
}

std::shared_ptr<const RegisteredClient> ClientRegistry::Find(const std::string& client_id) {
  std::lock_guard lock(mu_);
  try {
    ReloadIfChanged();
  } catch (const std::exception& e) {
    // A file being edited by hand may be momentarily malformed: keep the clients we had, and say so.
    Log("error", "the clients file is not readable; the clients loaded before stay in force",
        {{"file", path_}, {"error", e.what()}});
  }
  auto it = clients_.find(client_id);
  return it == clients_.end() ? nullptr : it->second;
}

// ------------------------------------------------------------------------------- signing keys

SigningKeys::SigningKeys(std::string dir) : dir_(std::move(dir)) {
  std::filesystem::create_directories(dir_);
  ::chmod(dir_.c_str(), 0700);
  std::lock_guard lock(mu_);
  Load();
  if (keys_.empty()) {
    Rotate(dir_);
    Load();
  }
  if (keys_.empty()) throw std::runtime_error("no signing key in " + dir_);
}

void SigningKeys::Load() const {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir_)) {
    std::string name = e.path().filename().string();
    if (name.rfind("signing-", 0) == 0 && e.path().extension() == ".pem") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  std::vector<std::shared_ptr<const jose::Key>> keys;
  for (const auto& f : files) {
    std::string name = fs::path(f).stem().string();  // signing-<kid>
    try {
      keys.push_back(std::make_shared<jose::Key>(jose::Key::FromPem(ReadWhole(f), name.substr(8))));
    } catch (const std::exception&) {
      if (keys_.empty() && loaded_at_ms_ == 0) throw;  // at start-up a bad key file stops the server
    }
  }
  if (!keys.empty()) keys_ = std::move(keys);
  loaded_at_ms_ = NowMs();
}

std::shared_ptr<const jose::Key> SigningKeys::Current() const {
  std::lock_guard lock(mu_);
  return keys_.back();
}

std::string SigningKeys::Rotate(const std::string& dir) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  // The newest key signs, and "newest" is the kid's order: a UTC timestamp to the microsecond,
  // made later than every kid already there.
  std::string newest;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.rfind("signing-", 0) == 0 && e.path().extension() == ".pem") newest = std::max(newest, e.path().stem().string().substr(8));
  }
  std::string kid;
  do {
    auto now = std::chrono::system_clock::now();
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
    char stamp[40];
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tm);
    char frac[8];
    std::snprintf(frac, sizeof frac, "%06lld", static_cast<long long>(us));
    kid = std::string(stamp) + frac + "-" + RandomHex(4);
  } while (kid <= newest);
  jose::Key key = jose::Key::Generate("EC", "P-256", kid);
  WriteAtomically(dir + "/signing-" + kid + ".pem", key.PrivatePem());
  return kid;
}

std::shared_ptr<const jose::Key> SigningKeys::Find(std::string_view kid) const {
  std::lock_guard lock(mu_);
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& k : keys_) {
      if (k->kid() == kid) return k;
    }
    if (pass == 0) {
      if (NowMs() - loaded_at_ms_ < 5000) break;
      try {
        Load();
      } catch (const std::exception&) {
        break;
      }
    }
  }
  return nullptr;
}

std::vector<std::shared_ptr<const jose::Key>> SigningKeys::All() const {
  std::lock_guard lock(mu_);
  return keys_;
}

// ------------------------------------------------------------------------------- tokens

Authenticator::Authenticator(const SigningKeys& keys, std::string issuer, OidcConfig oidc)
    : keys_(keys), issuer_(std::move(issuer)), oidc_(std::move(oidc)) {
  if (!oidc_.issuer.empty()) {
    if (oidc_.audience.empty()) {
      throw std::invalid_argument("FLS_OIDC_AUDIENCE is required with FLS_OIDC_ISSUER (tokens for other apps must not pass)");
    }
    std::string text = ReadWhole(oidc_.jwks_file);
    if (text.empty()) throw std::invalid_argument("FLS_OIDC_JWKS_FILE: cannot read " + oidc_.jwks_file);
    oidc_keys_ = std::make_shared<jose::KeySet>(jose::ParseJwks(text));
    if (oidc_keys_->keys.empty()) throw std::invalid_argument("FLS_OIDC_JWKS_FILE: no usable key in " + oidc_.jwks_file);
  }
}

std::string Authenticator::Issue(const RegisteredClient& client, const std::vector<Scope>& scopes, int64_t now_s,
                                 int64_t lifetime_s) const {
  std::string scope_text;
  for (const auto& s : scopes) scope_text += (scope_text.empty() ? "" : " ") + s.text;
  std::string sites = "[";
  for (size_t i = 0; i < client.sites.size(); ++i) sites += (i ? "," : "") + JsonEscape(client.sites[i]);
  sites += "]";
  std::string payload = "{\"iss\":" + JsonEscape(issuer_) + ",\"aud\":" + JsonEscape(issuer_) +
                        ",\"sub\":" + JsonEscape(client.client_id) + ",\"client_id\":" + JsonEscape(client.client_id) +
                        ",\"iat\":" + std::to_string(now_s) + ",\"exp\":" + std::to_string(now_s + lifetime_s) +
                        ",\"jti\":\"" + RandomHex(16) + "\",\"scope\":" + JsonEscape(scope_text) +
                        ",\"fls_role\":\"" + RoleName(client.role) + "\",\"fls_sites\":" + sites + "}";
  return jose::SignCompact(*keys_.Current(), "ES256", payload);
}

std::shared_ptr<const Principal> Authenticator::Authenticate(std::string_view token, int64_t now_s) const {
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(token);
    if (it != cache_.end()) {
      if (it->second->expires_at > now_s) return it->second;
      cache_.erase(it);
      throw Unauthorized("the access token has expired");
    }
  }
  auto p = Verify(token, now_s);
  std::lock_guard lock(mu_);
  if (cache_.size() >= 20000) {
    for (auto it = cache_.begin(); it != cache_.end();) {
      it = it->second->expires_at <= now_s ? cache_.erase(it) : std::next(it);
    }
    if (cache_.size() >= 20000) cache_.clear();
  }
  cache_.emplace(std::string(token), p);
  return p;
}

std::shared_ptr<const Principal> Authenticator::Verify(std::string_view token, int64_t now_s) const {
  std::string why;
  auto jws = jose::ParseCompact(token, &why);
  if (!jws) throw Unauthorized("the access token is not a JWT (" + why + ")");
  rapidjson::Document claims;
  claims.Parse(jws->payload_json.c_str(), jws->payload_json.size());
  if (claims.HasParseError() || !claims.IsObject()) throw Unauthorized("the access token's claims are not JSON");
  std::string iss = StrMember(claims, "iss");
  auto p = std::make_shared<Principal>();
  std::shared_ptr<const jose::Key> own;
  const jose::Key* key = nullptr;
  if (iss == issuer_) {
    own = keys_.Find(jws->kid);
    key = own.get();
    if (!key) throw Unauthorized("the access token was signed with a key this server does not have");
  } else if (!oidc_.issuer.empty() && iss == oidc_.issuer) {
    key = oidc_keys_->Find(jws->kid);
    if (!key) throw Unauthorized("no key of the identity provider has this kid");
    p->issuer = iss;
  } else {
    throw Unauthorized("the access token's issuer is not trusted here");
  }
  if (!key->Allows(jws->alg) || !key->Verify(jws->alg, jws->signing_input, jws->signature)) {
    throw Unauthorized("the access token's signature does not verify");
  }
  auto exp = IntMember(claims, "exp");
  if (!exp) throw Unauthorized("the access token has no exp");
  if (*exp <= now_s) throw Unauthorized("the access token has expired");
  if (auto nbf = IntMember(claims, "nbf"); nbf && *nbf > now_s + 30) throw Unauthorized("the access token is not valid yet");
  p->expires_at = *exp;
  if (p->issuer.empty()) {
    auto aud = StrArray(claims, "aud");
    if (std::find(aud.begin(), aud.end(), issuer_) == aud.end()) throw Unauthorized("the access token is not for this server");
    p->client_id = StrMember(claims, "client_id");
    p->subject = StrMember(claims, "sub");
    auto role = ParseRole(StrMember(claims, "fls_role"));
    if (!role) throw Unauthorized("the access token has no role");
    p->role = *role;
    p->scopes = ParseScopes(StrMember(claims, "scope"));
    p->sites = StrArray(claims, "fls_sites");
  } else {
    auto aud = StrArray(claims, "aud");
    if (std::find(aud.begin(), aud.end(), oidc_.audience) == aud.end()) {
      throw Unauthorized("the identity provider's token is not for this server (aud)");
    }
    auto role = ParseRole(StrMember(claims, oidc_.role_claim.c_str()));
    if (!role) throw Unauthorized("the identity provider's token carries no FLS role (" + oidc_.role_claim + ")");
    p->role = *role;
    p->subject = StrMember(claims, "preferred_username");
    if (p->subject.empty()) p->subject = StrMember(claims, "sub");
    p->client_id = StrMember(claims, "azp");
    if (p->client_id.empty()) p->client_id = StrMember(claims, "client_id");
    // A scope claim limits the token: one that names no SMART scope (`openid profile`) grants
    // nothing; without the claim, the role's own scopes apply.
    if (claims.HasMember("scope")) {
      p->scopes = ParseScopes(StrMember(claims, "scope"));
    } else {
      p->scopes = ParseScopes(DefaultScopes(*role));
    }
    p->sites = StrArray(claims, oidc_.sites_claim.c_str());
  }
  return p;
}

Authenticator::IdToken Authenticator::VerifyIdToken(std::string_view id_token, const std::string& client_id,
                                                    const std::string& nonce, int64_t now_s) const {
  if (!oidc_keys_) throw std::invalid_argument("no identity provider is configured");
  std::string why;
  auto jws = jose::ParseCompact(id_token, &why);
  if (!jws) throw std::invalid_argument("the ID token is not a compact JWS: " + why);
  rapidjson::Document claims;
  claims.Parse(jws->payload_json.c_str(), jws->payload_json.size());
  if (claims.HasParseError() || !claims.IsObject()) throw std::invalid_argument("the ID token's claims are not JSON");
  if (StrMember(claims, "iss") != oidc_.issuer) throw std::invalid_argument("the ID token's iss is not the configured issuer");
  const jose::Key* key = oidc_keys_->Find(jws->kid);
  if (!key) throw std::invalid_argument("no key of the identity provider has the ID token's kid");
  if (!key->Allows(jws->alg) || !key->Verify(jws->alg, jws->signing_input, jws->signature)) {
    throw std::invalid_argument("the ID token's signature does not verify");
  }
  auto aud = StrArray(claims, "aud");
  if (std::find(aud.begin(), aud.end(), client_id) == aud.end()) throw std::invalid_argument("the ID token is not for this client (aud)");
  if (aud.size() > 1 && StrMember(claims, "azp") != client_id) throw std::invalid_argument("the ID token's azp is not this client");
  auto exp = IntMember(claims, "exp");
  if (!exp || *exp <= now_s) throw std::invalid_argument("the ID token has expired or has no exp");
  auto iat = IntMember(claims, "iat");
  if (!iat || *iat > now_s + 60) throw std::invalid_argument("the ID token's iat is missing or in the future");
  if (nonce.empty() || StrMember(claims, "nonce") != nonce) throw std::invalid_argument("the ID token's nonce does not match the login");
  IdToken t;
  t.subject = StrMember(claims, "sub");
  if (t.subject.empty()) throw std::invalid_argument("the ID token has no sub");
  t.login = StrMember(claims, "preferred_username");
  if (t.login.empty()) t.login = t.subject;
  t.name = StrMember(claims, "name");
  if (t.name.empty()) t.name = t.login;
  t.role = ParseRole(StrMember(claims, oidc_.role_claim.c_str()));
  t.sites = StrArray(claims, oidc_.sites_claim.c_str());
  // SMART's fhirUser: kept when it names a Practitioner of this server by a relative reference.
  t.practitioner = StrMember(claims, "fhirUser");
  if (!IsPractitionerReference(t.practitioner)) t.practitioner.clear();
  t.expires_at = *exp;
  return t;
}

AssertionCheck CheckClientAssertion(ClientRegistry& registry, std::string_view assertion,
                                    const std::vector<std::string>& token_urls, int64_t now_s) {
  AssertionCheck out;
  auto fail = [&](int status, const char* error, std::string why) {
    out.client.reset();
    out.error = TokenError{status, error, std::move(why)};
    return out;
  };
  std::string why;
  auto jws = jose::ParseCompact(assertion, &why);
  if (!jws) return fail(401, "invalid_client", "client_assertion is not a compact JWS: " + why);
  if (jws->alg != "RS384" && jws->alg != "ES384") {
    return fail(401, "invalid_client", "client_assertion alg '" + jws->alg + "' is not accepted (RS384 or ES384)");
  }
  if (jws->kid.empty()) return fail(401, "invalid_client", "client_assertion has no kid");
  rapidjson::Document claims;
  claims.Parse(jws->payload_json.c_str(), jws->payload_json.size());
  if (claims.HasParseError() || !claims.IsObject()) return fail(401, "invalid_client", "client_assertion claims are not JSON");
  std::string iss = StrMember(claims, "iss"), sub = StrMember(claims, "sub");
  out.claimed_client = iss.substr(0, 128);
  if (iss.empty() || iss != sub) return fail(401, "invalid_client", "iss and sub must both be the client_id");
  auto client = registry.Find(iss);
  if (!client) return fail(401, "invalid_client", "unknown client");
  const jose::Key* key = client->keys ? client->keys->Find(jws->kid) : nullptr;
  if (!key) return fail(401, "invalid_client", "no key with this kid in the client's registered JWKS");
  if (!key->Allows(jws->alg)) return fail(401, "invalid_client", "the key named by kid does not allow " + jws->alg);
  if (!key->Verify(jws->alg, jws->signing_input, jws->signature)) {
    return fail(401, "invalid_client", "client_assertion signature does not verify");
  }
  auto aud = StrArray(claims, "aud");
  bool aud_ok = false;
  for (const auto& a : aud) aud_ok = aud_ok || std::find(token_urls.begin(), token_urls.end(), a) != token_urls.end();
  if (!aud_ok) return fail(401, "invalid_client", "aud must be the token endpoint's URL");
  auto exp = IntMember(claims, "exp");
  if (!exp) return fail(401, "invalid_client", "client_assertion has no exp");
  constexpr int64_t kSkew = 30;
  if (*exp + kSkew <= now_s) return fail(401, "invalid_client", "client_assertion has expired");
  if (*exp > now_s + 300 + kSkew) return fail(401, "invalid_client", "client_assertion exp is more than 5 minutes ahead");
  std::string jti = StrMember(claims, "jti");
  if (jti.empty() || jti.size() > 256) return fail(401, "invalid_client", "client_assertion needs a jti (at most 256 characters)");
  out.client = client;
  out.jti = jti;
  out.exp = *exp;
  return out;
}

std::map<std::string, std::string> ParseForm(std::string_view body) {
  std::map<std::string, std::string> out;
  auto decode = [](std::string_view s) {
    std::string r;
    for (size_t i = 0; i < s.size(); ++i) {
      char c = s[i];
      if (c == '+') {
        r += ' ';
      } else if (c == '%') {
        if (i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
            !std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
          throw std::invalid_argument("bad %-escape in the form");
        }
        r += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        r += c;
      }
    }
    return r;
  };
  size_t i = 0;
  while (i <= body.size()) {
    size_t j = body.find('&', i);
    if (j == std::string_view::npos) j = body.size();
    auto part = body.substr(i, j - i);
    if (!part.empty()) {
      auto eq = part.find('=');
      std::string name = decode(part.substr(0, eq));
      std::string value = eq == std::string_view::npos ? "" : decode(part.substr(eq + 1));
      if (!out.emplace(name, value).second) throw std::invalid_argument("parameter " + name + " is repeated");
    }
    i = j + 1;
  }
  return out;
}

}  // namespace fls::server
