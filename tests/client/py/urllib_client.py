#!/usr/bin/env python3
"""FHIR requests with Python's urllib.request, the way a Python user writes them (standard library only).

Run by real_urllib.test.js; by hand:

    python3 urllib_client.py request METHOD URL   < body.json   (a body on stdin for POST and PUT)
    python3 urllib_client.py pages URL                          (GET, then every Bundle next link)

Prints one JSON object on stdout: {"status", "headers", "body"} for `request`, {"pages": [...]} of
those for `pages`. The URL is handed to urllib as it is: urllib.request quotes nothing, so a `|`
typed in the query goes on the wire raw. An HTTP error status is a result (urllib raises HTTPError,
which carries the status and the body); a network error exits 1 with the reason on stderr.

With FLS_TOKEN in the environment (real_urllib.test.js passes it there, never on the command line),
every request, each `next` page included, carries `Authorization: Bearer $FLS_TOKEN`; without it,
none. FLS_TOKEN set but blank exits 1 with the reason on stderr.
"""
import json
import os
import sys
import urllib.error
import urllib.request

# No proxy from the environment: the server under test is on this machine.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
MAX_PAGES = 100


def auth_headers():
    """The Authorization header of every request, from FLS_TOKEN: {} when it is unset."""
    token = os.environ.get("FLS_TOKEN")
    if token is None:
        return {}
    if not token.strip():
        # Fail loudly: requests without the token the caller meant to send can only be refused.
        raise ValueError("FLS_TOKEN is set but empty: set it to the bearer token or unset it")
    return {"Authorization": f"Bearer {token.strip()}"}


def call(method, url, body=None):
    headers = {"Accept": "application/fhir+json", **auth_headers()}
    data = None
    if body is not None:
        data = body.encode("utf-8")
        headers["Content-Type"] = "application/fhir+json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with OPENER.open(request, timeout=60) as response:
            return result(response.status, response.headers, response.read())
    except urllib.error.HTTPError as err:
        return result(err.code, err.headers, err.read())


def result(status, headers, raw):
    return {
        "status": status,
        "headers": {name.lower(): value for name, value in headers.items()},
        "body": raw.decode("utf-8", errors="replace"),
    }


def pages(url):
    out = []
    while url and len(out) < MAX_PAGES:
        page = call("GET", url)
        out.append(page)
        if page["status"] != 200:
            break
        links = json.loads(page["body"]).get("link", [])
        url = next((link.get("url") for link in links if link.get("relation") == "next"), None)
    return {"pages": out}


def main(argv):
    if len(argv) == 3 and argv[0] == "request":
        method, url = argv[1].upper(), argv[2]
        body = sys.stdin.read() if method in ("POST", "PUT", "PATCH") else None
        out = call(method, url, body)
    elif len(argv) == 2 and argv[0] == "pages":
        out = pages(argv[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (urllib.error.URLError, OSError, ValueError) as err:
        print(f"urllib_client.py: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
