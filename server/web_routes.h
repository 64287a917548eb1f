#pragma once
// The browser pages built from web/ (./deploy/fls build runs Vite into web/dist): each page at
// /<page> (dashboard.html at /dashboard) and the hashed assets at /app/assets/<file>, read into
// memory at start-up and served as literal routes, so no request names a file of its own. The
// pages then use the public API with the session cookie of /login.

#include <string>

#include "server/router.h"

namespace fls::server {

// `dir`: web/dist. Without it (the pages not built), each page answers 503 saying how to build it.
// Returns the number of files served.
int RegisterWebRoutes(Router& router, const std::string& dir);

}  // namespace fls::server
