#include "server/web_routes.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "fhir/error.h"
#include "server/log.h"
#include "server/login_routes.h"

namespace fls::server {

namespace {

std::string ReadAll(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ContentType(const std::string& ext) {
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".woff2") return "font/woff2";
  if (ext == ".json") return "application/json";
  return "";
}

// Our own scripts, styles and API only; Chart.js draws on a canvas (no inline script or style
// attribute is needed: Preact and Chart.js set styles through the CSSOM).
void PageHeaders(HttpResponse& r) {
  HtmlPageHeaders(r, "no-cache",
                  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
                  "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
}

}  // namespace

int RegisterWebRoutes(Router& router, const std::string& dir) {
  namespace fs = std::filesystem;
  int served = 0;
  // Browsers ask every site for an icon: none, without an error in their console.
  router.Add("GET", "/favicon.ico", "", true, Access::Public(), [](HttpRequest&) {
    HttpResponse r;
    r.status = 204;
    r.content_type = "";
    r.headers.emplace_back("Cache-Control", "public, max-age=86400");
    return r;
  });
  const std::vector<std::string> pages = {"dashboard", "app"};
  std::error_code ec;
  const bool built = fs::is_regular_file(fs::path(dir) / "dashboard.html", ec);
  for (const auto& page : pages) {
    const fs::path file = fs::path(dir) / (page + ".html");
    if (fs::is_regular_file(file, ec)) {
      auto body = std::make_shared<const std::string>(ReadAll(file));
      router.Add("GET", "/" + page, "", true, Access::Public(), [body](HttpRequest&) {
        HttpResponse r;
        PageHeaders(r);
        r.body = *body;
        return r;
      });
      ++served;
    } else {
      router.Add("GET", "/" + page, "", true, Access::Public(), [dir](HttpRequest&) -> HttpResponse {
        throw fhir::FhirError(fhir::ErrorCode::kServiceUnavailable,
                              "the web pages are not built in " + dir + ": run ./deploy/fls build (it bundles web/ with npm)");
      });
    }
  }
  if (!built) {
    Log("warning", "the web pages are not built: /dashboard answers 503", {{"dir", dir}});
    return served;
  }
  const fs::path assets = fs::path(dir) / "assets";
  if (fs::is_directory(assets, ec)) {
    for (const auto& e : fs::directory_iterator(assets, ec)) {
      if (!e.is_regular_file()) continue;
      const std::string name = e.path().filename().string();
      const std::string type = ContentType(e.path().extension().string());
      if (type.empty() || name.empty() || name[0] == '.') continue;
      auto body = std::make_shared<const std::string>(ReadAll(e.path()));
      router.Add("GET", "/app/assets/" + name, "", true, Access::Public(), [body, type](HttpRequest&) {
        HttpResponse r;
        r.content_type = type;
        // Hashed names: a new build is a new name.
        r.headers.emplace_back("Cache-Control", "public, max-age=31536000, immutable");
        r.headers.emplace_back("X-Content-Type-Options", "nosniff");
        r.body = *body;
        return r;
      });
      ++served;
    }
  }
  return served;
}

}  // namespace fls::server
