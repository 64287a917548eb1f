// curl, the command-line tool, driven as a user types it: `curl -s 'http://…/Patient?identifier=system|value'`.
// curl sends the target as typed: the `|` goes on the wire raw. (curl's URL globbing only touches
// `[]{}`, which these URLs do not hold, so no `-g`.)
import { runProgram, realClientScenario, reply } from './real_clients.js';
import { FLS_TOKEN } from './helpers.js';

const INSTALL = 'install the Debian package curl (./deploy/fls deps does)';
// -i: the status line and headers before the body; no proxy from the environment (the server is local).
// The bearer token as a user passes it, `-H 'Authorization: Bearer …'`, on every call, the `next`
// pages too (runProgram redacts it from failure messages; curl does not follow redirects here).
const COMMON = ['-sS', '-i', '--noproxy', '*', '--max-time', '60', '-H', 'Accept: application/fhir+json',
  ...(FLS_TOKEN ? ['-H', `Authorization: Bearer ${FLS_TOKEN}`] : [])];

/** Splits `curl -i` output into the final response (skipping any `100 Continue`). */
function parseCurlOutput(out) {
  let rest = out;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    const head = end < 0 ? rest : rest.slice(0, end);
    const m = head.match(/^HTTP\/[\d.]+ (\d{3})/);
    if (!m) throw new Error(`curl printed no HTTP status line: ${out.slice(0, 500)}`);
    rest = end < 0 ? '' : rest.slice(end + 4);
    const status = Number(m[1]);
    if (status >= 100 && status < 200) continue;
    const headers = {};
    for (const field of head.split('\r\n').slice(1)) {
      const i = field.indexOf(':');
      if (i > 0) headers[field.slice(0, i).trim().toLowerCase()] = field.slice(i + 1).trim();
    }
    return reply(status, headers, rest);
  }
}

let base;
async function curl(method, pathOrUrl, resource) {
  const url = /^https?:/.test(pathOrUrl) ? pathOrUrl : `${base}/${pathOrUrl}`;
  const args = [...COMMON];
  if (method !== 'GET' && method !== 'POST') args.push('-X', method);
  if (resource !== undefined) args.push('-H', 'Content-Type: application/fhir+json', '--data-binary', '@-');
  args.push(url);
  const out = await runProgram('curl', args, {
    input: resource === undefined ? '' : JSON.stringify(resource), installHint: INSTALL,
  });
  return parseCurlOutput(out);
}

realClientScenario({
  name: 'curl',
  key: 'curl',
  pipe: '|',
  async setup(baseUrl) {
    base = baseUrl;
    return (await runProgram('curl', ['--version'], { installHint: INSTALL })).split('\n')[0];
  },
  create: (resource) => curl('POST', resource.resourceType, resource),
  get: (path) => curl('GET', path),
  put: (path, resource) => curl('PUT', path, resource),
  async pages(path) {
    // A shell loop: curl the first page, then each `next` link until there is none.
    const out = [];
    let url = path;
    while (url && out.length < 100) {
      const page = await curl('GET', url);
      out.push(page);
      const next = page.status === 200 && (page.body.link || []).find((l) => l.relation === 'next');
      url = next ? next.url : null;
    }
    return out;
  },
  transaction: (bundle) => curl('POST', '', bundle),
});
