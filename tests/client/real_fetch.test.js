// Node's built-in fetch (undici, Node >= 18). It parses the URL with the WHATWG URL parser, whose
// query percent-encode set (C0 controls, space, `"`, `#`, `<`, `>`) leaves `|` alone: raw on the wire.
import { realClientScenario, reply } from './real_clients.js';
import { AUTH_HEADERS } from './helpers.js';

let base;
async function request(method, pathOrUrl, resource) {
  const url = /^https?:/.test(pathOrUrl) ? pathOrUrl : `${base}/${pathOrUrl}`;
  const res = await fetch(url, {
    method,
    headers: {
      accept: 'application/fhir+json',
      ...(resource === undefined ? {} : { 'content-type': 'application/fhir+json' }),
      // The bearer token on every request, the `next` pages too (none when FLS_TOKEN is unset).
      ...AUTH_HEADERS,
    },
    body: resource === undefined ? undefined : JSON.stringify(resource),
  });
  return reply(res.status, Object.fromEntries(res.headers), await res.text());
}

realClientScenario({
  name: 'Node fetch',
  key: 'fetch',
  pipe: '|',
  async setup(baseUrl) {
    base = baseUrl;
    return `Node ${process.version}, undici ${process.versions.undici || '(version not reported)'}`;
  },
  create: (resource) => request('POST', resource.resourceType, resource),
  get: (path) => request('GET', path),
  put: (path, resource) => request('PUT', path, resource),
  async pages(path) {
    const out = [];
    let url = path;
    while (url && out.length < 100) {
      const page = await request('GET', url);
      out.push(page);
      const next = page.status === 200 && (page.body.link || []).find((l) => l.relation === 'next');
      url = next ? next.url : null;
    }
    return out;
  },
  transaction: (bundle) => request('POST', '', bundle),
});
