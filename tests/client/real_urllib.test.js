// Python 3's urllib.request (py/urllib_client.py, standard library only), run with python3.
// urllib.request quotes nothing in the URL it is given: a `|` typed in the query goes on the wire raw.
import { fileURLToPath } from 'node:url';
import { runProgram, realClientScenario, reply } from './real_clients.js';
import { FLS_TOKEN } from './helpers.js';

const SCRIPT = fileURLToPath(new URL('./py/urllib_client.py', import.meta.url));
const INSTALL = 'install the Debian package python3 (./deploy/fls deps does)';
// The bearer token goes to the script in its environment (FLS_TOKEN, as checked by helpers.js), not
// on its command line, which `ps` and failure messages show; unset, the script sends none.
const ENV = { ...process.env };
delete ENV.FLS_TOKEN;
if (FLS_TOKEN) ENV.FLS_TOKEN = FLS_TOKEN;

let base;
const urlOf = (pathOrUrl) => (/^https?:/.test(pathOrUrl) ? pathOrUrl : `${base}/${pathOrUrl}`);
const toReply = (r) => reply(r.status, r.headers, r.body);

async function python(args, resource) {
  const out = await runProgram('python3', [SCRIPT, ...args], {
    input: resource === undefined ? '' : JSON.stringify(resource), installHint: INSTALL, env: ENV,
  });
  return JSON.parse(out);
}

const request = async (method, pathOrUrl, resource) => toReply(await python(['request', method, urlOf(pathOrUrl)], resource));

realClientScenario({
  name: 'Python urllib.request',
  key: 'urllib',
  pipe: '|',
  async setup(baseUrl) {
    base = baseUrl;
    return (await runProgram('python3', ['--version'], { installHint: INSTALL })).trim();
  },
  create: (resource) => request('POST', resource.resourceType, resource),
  get: (path) => request('GET', path),
  put: (path, resource) => request('PUT', path, resource),
  // The script follows the next links itself, in Python.
  pages: async (path) => (await python(['pages', urlOf(path)])).pages.map(toReply),
  transaction: (bundle) => request('POST', '', bundle),
});
