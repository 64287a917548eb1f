// The SMART on FHIR JavaScript client, npm `fhirclient` 2.4.0, in Node (its `main`, lib/entry/node.js).
// In Node it does its HTTP with cross-fetch, that is node-fetch 2, which parses the URL with Node's
// legacy url.parse(): that escapes `|` (and `{`, `}`, `^`, `` ` ``...) to `%7C`. So this client
// never sends a raw `|`; what it sends must still find the same Patient.
import { createRequire } from 'node:module';
import { realClientScenario, reply } from './real_clients.js';
import { FLS_TOKEN } from './helpers.js';

const require = createRequire(import.meta.url);
// CommonJS `module.exports = smart`: smart(request, response, storage) gives the SMART API whose
// client(state) is a Client without a launch. The request and response are only read by the SMART
// launch flows (authorize/ready), which these tests do not use; they are still given the shape the
// NodeAdapter reads, with an in-memory storage. The bearer token goes in state.tokenResponse, as a
// launch would leave it: Client.request (lib/Client.js) then adds `Authorization: Bearer <access_token>`
// to every request, the `next` pages it follows itself (pageLimit 0) and the GET of a 201's Location
// it makes when the body is empty (lib/lib.js) included. No refresh_token, so it never tries to refresh.
const smart = require('fhirclient');

function memoryStorage() {
  const map = new Map();
  return {
    async get(key) { return map.get(key); },
    async set(key, value) { map.set(key, value); return value; },
    async unset(key) { return map.delete(key); },
  };
}

let client;

const headersOf = (response) => Object.fromEntries([...response.headers.entries()]);

/** One call through the client with includeResponse; an HttpError (any non-2xx) becomes a reply too. */
async function call(requestOptions) {
  try {
    const { body, response } = await client.request({ ...requestOptions, includeResponse: true });
    return reply(response.status, headersOf(response), typeof body === 'string' ? body : JSON.stringify(body));
  } catch (err) {
    if (err && err.name === 'HttpError' && err.response) {
      return reply(err.status, headersOf(err.response), err.message);
    }
    throw err;
  }
}

const JSON_BODY = { 'content-type': 'application/fhir+json' };

realClientScenario({
  name: 'fhirclient (SMART on FHIR, Node)',
  key: 'fhirclient',
  pipe: '%7C',
  async setup(baseUrl) {
    const request = { url: '/', headers: { host: 'localhost' }, socket: {} };
    const response = { writeHead() {}, end() {} };
    client = smart(request, response, memoryStorage()).client({
      serverUrl: baseUrl,
      ...(FLS_TOKEN ? { tokenResponse: { access_token: FLS_TOKEN } } : {}),
    });
    return `fhirclient ${require('fhirclient/package.json').version}`;
  },
  // client.create is client.request({url: type, method: 'POST', body: JSON.stringify(resource)}).
  async create(resource) {
    try {
      const { body, response } = await client.create(resource, { includeResponse: true });
      return reply(response.status, headersOf(response), JSON.stringify(body));
    } catch (err) {
      if (err && err.name === 'HttpError' && err.response) return reply(err.status, headersOf(err.response), err.message);
      throw err;
    }
  },
  get: (path) => call({ url: path }),
  // A conditional update has no helper (client.update needs an id): client.request with method PUT.
  put: (path, resource) => call({ url: path, method: 'PUT', body: JSON.stringify(resource), headers: JSON_BODY }),
  async pages(path) {
    // pageLimit 0: the client follows every next link itself and resolves to the array of Bundles.
    // It rejects on any non-2xx page, so each Bundle it returns was answered 200 (a search's only 2xx).
    const bundles = await client.request(path, { pageLimit: 0 });
    return (Array.isArray(bundles) ? bundles : [bundles]).map((b) => reply(200, {}, JSON.stringify(b)));
  },
  transaction: (bundle) => call({ url: '/', method: 'POST', body: JSON.stringify(bundle), headers: JSON_BODY }),
});
