// Shared by the real_*.test.js files (not a test file: node --test only runs *.test.js).
//
// Each of those files drives the server with one real HTTP client written by others (curl, Python's
// urllib.request, Node's fetch, the SMART on FHIR `fhirclient`) through the same user story, with
// FHIR token searches typed the way R4 search.html writes them: `identifier=system|value`, the `|`
// raw. Every request goes through a WireTap, a byte-for-byte TCP relay in front of the server that
// records the request line each client really put on the socket, so the tests can say whether the
// client sent `|` raw or as `%7C` (it differs from one client to the next) and still check what a
// user notices: the status, the one match, the version, the pages, the rewritten reference.
import net from 'node:net';
import { execFile } from 'node:child_process';
import assert from 'node:assert/strict';
import { describe, it, before, after } from 'node:test';
import { randomUUID } from 'node:crypto';
import {
  BASE_URL, INS_SYSTEM, uniqueSuffix, randomIns, assertValid, searchMatches, makePatient, redactToken,
} from './helpers.js';

/** The system of the tag that groups the Patients of one paging test (one code per client and run). */
export const TAG_SYSTEM = 'https://fls.example.org/fhir/CodeSystem/client-test-run';

/**
 * Splits what a client writes on one connection into requests and reports each request line.
 * Handles Content-Length and chunked bodies and `Expect: 100-continue` (the body simply follows);
 * anything it cannot frame stops the recording for that connection, never the relay.
 */
class RequestFramer {
  constructor(onRequest) {
    this.onRequest = onRequest;
    this.buf = Buffer.alloc(0);
    this.state = 'head'; // head | body | chunk-size | chunk-data | chunk-end | trailer | lost
    this.remaining = 0;
  }

  push(chunk) {
    if (this.state === 'lost') return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.step());
  }

  line() { // the next CRLF-terminated line, or null until it is complete
    const end = this.buf.indexOf('\r\n');
    if (end < 0) return null;
    const text = this.buf.subarray(0, end).toString('latin1');
    this.buf = this.buf.subarray(end + 2);
    return text;
  }

  skip() { // consumes up to `remaining` body bytes; true once they are all consumed
    const n = Math.min(this.remaining, this.buf.length);
    this.buf = this.buf.subarray(n);
    this.remaining -= n;
    return this.remaining === 0;
  }

  step() {
    switch (this.state) {
      case 'head': {
        while (this.buf.length >= 2 && this.buf[0] === 13 && this.buf[1] === 10) this.buf = this.buf.subarray(2);
        const end = this.buf.indexOf('\r\n\r\n');
        if (end < 0) {
          if (this.buf.length > 1 << 20) this.state = 'lost';
          return false;
        }
        // latin1 keeps every byte as one character: the target is recorded exactly as sent.
        const [requestLine, ...fields] = this.buf.subarray(0, end).toString('latin1').split('\r\n');
        this.buf = this.buf.subarray(end + 4);
        const first = requestLine.indexOf(' ');
        const last = requestLine.lastIndexOf(' ');
        this.onRequest({
          method: requestLine.slice(0, first),
          target: requestLine.slice(first + 1, last),
          version: requestLine.slice(last + 1),
          line: requestLine,
        });
        const header = (name) => fields.map((f) => f.match(/^([^:]+):\s*(.*?)\s*$/))
          .filter((m) => m && m[1].toLowerCase() === name).map((m) => m[2]);
        if (header('transfer-encoding').some((v) => /chunked/i.test(v))) {
          this.state = 'chunk-size';
        } else {
          const length = header('content-length');
          this.remaining = length.length ? Number(length[0]) : 0;
          if (!Number.isSafeInteger(this.remaining) || this.remaining < 0) this.state = 'lost';
          else if (this.remaining > 0) this.state = 'body';
        }
        return true;
      }
      case 'body':
        if (!this.skip()) return false;
        this.state = 'head';
        return true;
      case 'chunk-size': {
        const text = this.line();
        if (text === null) return false;
        this.remaining = parseInt(text.split(';')[0].trim(), 16);
        if (Number.isNaN(this.remaining)) this.state = 'lost';
        else this.state = this.remaining === 0 ? 'trailer' : 'chunk-data';
        return true;
      }
      case 'chunk-data':
        if (!this.skip()) return false;
        this.state = 'chunk-end';
        return true;
      case 'chunk-end':
        if (this.line() === null) return false;
        this.state = 'chunk-size';
        return true;
      case 'trailer': {
        const text = this.line();
        if (text === null) return false;
        if (text === '') this.state = 'head';
        return true;
      }
      default:
        return false;
    }
  }
}

/**
 * A TCP relay on 127.0.0.1 in front of the server under test that records every request line.
 * Bytes pass through unchanged both ways, so the server sees exactly what the client sent and its
 * `Host` (the relay's): the links the server builds from `Host` come back through the relay too.
 * Not safe across threads (there are none here); owns its listening socket and every relayed one.
 */
export class WireTap {
  constructor(upstream = BASE_URL) {
    this.upstream = new URL(upstream);
    assert.equal(this.upstream.protocol, 'http:',
      `the wire tap relays plain HTTP only; FLS_BASE_URL is ${upstream}`);
    this.basePath = this.upstream.pathname.replace(/\/+$/, '');
    this.requests = [];
    this.sockets = new Set();
    this.server = net.createServer((downstream) => this.relay(downstream));
  }

  async start() {
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    this.baseUrl = `http://127.0.0.1:${this.server.address().port}${this.basePath}`;
    return this.baseUrl;
  }

  relay(downstream) {
    const upstream = net.connect(Number(this.upstream.port || 80), this.upstream.hostname);
    const framer = new RequestFramer((request) => this.requests.push(request));
    for (const s of [downstream, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => { downstream.destroy(); upstream.destroy(); });
    }
    downstream.on('data', (chunk) => framer.push(chunk));
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  }

  /** A mark to pass to `since`: the requests recorded so far. */
  mark() { return this.requests.length; }

  /** The requests recorded after `mark`. */
  since(mark) { return this.requests.slice(mark); }

  async close() {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => { this.server.close(() => resolve()); });
  }
}

/**
 * Runs a program (curl, python3) with `input` on its stdin and `env` (default: this process's) as
 * its environment; resolves to its stdout. A program that is not installed is a failure that says
 * how to install it, never a skip. The bearer token is redacted from the failure message: curl has
 * it in its arguments, and execFile's err.message repeats the whole command line.
 */
export function runProgram(file, args, { input = '', installHint, env = process.env }) {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { maxBuffer: 64 << 20, timeout: 120_000, env }, (err, stdout, stderr) => {
      if (err && err.code === 'ENOENT') {
        reject(new Error(`${file} is not installed or not on PATH: ${installHint}`));
      } else if (err) {
        reject(new Error(redactToken(`${file} ${args.join(' ')} failed (${err.code ?? err.signal}): ${stderr || err.message}`)));
      } else {
        resolve(stdout);
      }
    });
    child.stdin.on('error', () => {}); // a program that exits before reading stdin is reported above
    child.stdin.end(input);
  });
}

/** What the server answered, whichever client asked: { status, headers (lower-case names), body, text }. */
export function reply(status, headers, text) {
  let body;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
  }
  return { status, headers, body, text };
}

function expectStatus(r, status, what) {
  assert.equal(r.status, status, `${what}: expected HTTP ${status}, got ${r.status}: ${String(r.text || '').slice(0, 2000)}`);
}

function expectBundle(r, type, what) {
  assert.ok(r.body && r.body.resourceType === 'Bundle', `${what}: expected a Bundle, got ${String(r.text).slice(0, 1000)}`);
  assert.equal(r.body.type, type, `${what}: Bundle.type`);
  assertValid(r.body, what);
}

function nextLink(bundle) {
  const link = (bundle.link || []).find((l) => l.relation === 'next');
  return link && link.url;
}

/** The id in a Location (or response.location) ending in Type/id[/_history/version]. */
function idFrom(location, type, version) {
  const m = String(location || '').match(new RegExp(`(?:^|/)${type}/([A-Za-z0-9\\-.]{1,64})(?:/_history/([^/]+))?$`));
  assert.ok(m, `expected a location naming a ${type}, got ${JSON.stringify(location)}`);
  if (version !== undefined) assert.equal(m[2], version, `version in ${location}`);
  return m[1];
}

/**
 * The user story every real client goes through, as one `describe` of dependent steps.
 *
 * `client` is an adapter around one real client, each method a call the way its users write it:
 *   name             what the test names say ("curl 7.88.1")
 *   pipe             how `|` in a query typed by the user appears on the wire: '|' or '%7C'
 *   setup(baseUrl)   called once, with the base URL of the wire tap, before the first step;
 *                    checks the client is there and resolves to its name and version
 *   create(resource)               POST [base]/Type
 *   get(pathOrUrl)                 GET, the path and query passed exactly as typed
 *   put(pathAndQuery, resource)    PUT (a conditional update when the path has a query)
 *   pages(pathAndQuery)            GET, then every next link, the way this client pages: [reply...]
 *   transaction(bundle)            POST [base]/
 * Each resolves to a `reply` (an HTTP error status is a reply, not a rejection).
 */
export function realClientScenario(client) {
  describe(`${client.name}: create, search, conditional update, paging and transaction with a raw | in the query`, () => {
    const tap = new WireTap();
    const suffix = uniqueSuffix();
    const ins = randomIns();
    const ipp = `IPP-REAL-${client.key}-${suffix}`;
    const byIns = `Patient?identifier=${INS_SYSTEM}|${ins}`;
    let patientId;

    /** The request targets sent with `method` since `mark`. */
    const sent = (mark, method) => tap.since(mark).filter((r) => r.method === method).map((r) => r.target);
    /** The client sent `pathAndQuery` (typed with a raw `|`) on the wire as `|` or `%7C`, as expected of it. */
    const expectOnWire = (mark, method, pathAndQuery) => {
      const expected = `${tap.basePath}/${pathAndQuery.replaceAll('|', client.pipe)}`;
      const targets = sent(mark, method);
      assert.ok(targets.includes(expected),
        `${client.name} should have sent ${method} ${expected}; it sent ${method}: ${JSON.stringify(targets)}`);
    };

    before(() => tap.start());
    after(() => tap.close());

    // A test, not a hook: a client that is not installed fails here, by name, and is never skipped.
    it('the client is installed and runs', async (t) => {
      t.diagnostic(await client.setup(tap.baseUrl));
    });

    it('creates a Patient with an INS identifier: 201, Location Patient/<id>/_history/1', async () => {
      const r = await client.create(makePatient(ins, ipp));
      expectStatus(r, 201, `POST Patient with ${client.name}`);
      patientId = idFrom(r.headers.location, 'Patient', '1');
      if (r.body) {
        assertValid(r.body, 'created Patient');
        assert.equal(r.body.id, patientId, 'the body is the Patient the Location names');
        assert.equal(r.body.meta.versionId, '1');
      }
    });

    it(`finds it by ${byIns.replace(ins, '<value>')} typed raw: exactly one match`, async () => {
      assert.ok(patientId, 'an earlier step failed');
      const mark = tap.mark();
      const r = await client.get(byIns);
      expectOnWire(mark, 'GET', byIns);
      expectStatus(r, 200, `GET ${byIns}`);
      expectBundle(r, 'searchset', `GET ${byIns}`);
      const matches = searchMatches(r.body, 'Patient', `GET ${byIns}`);
      assert.deepEqual(matches.map((p) => p.id), [patientId], 'exactly the Patient created');
      assert.ok(matches[0].identifier.some((i) => i.system === INS_SYSTEM && i.value === ins), 'with its INS');
    });

    it('updates it with PUT Patient?identifier=system|value: same id, version 2', async () => {
      assert.ok(patientId, 'an earlier step failed');
      const phone = '+33 4 72 11 00 00';
      const mark = tap.mark();
      const r = await client.put(byIns, makePatient(ins, ipp, { telecom: [{ system: 'phone', value: phone, use: 'home' }] }));
      expectOnWire(mark, 'PUT', byIns);
      // R4 http.html#cond-update: one match, so the match is updated (200), no new resource.
      expectStatus(r, 200, `PUT ${byIns}`);
      if (r.body) {
        assertValid(r.body, 'conditionally updated Patient');
        assert.equal(r.body.id, patientId, 'the match was updated, not a new Patient created');
        assert.equal(r.body.meta.versionId, '2');
      }
      if (r.headers.etag) assert.equal(r.headers.etag, 'W/"2"', 'ETag');
      if (r.headers.location) assert.equal(idFrom(r.headers.location, 'Patient', '2'), patientId, 'Location');

      const read = await client.get(`Patient/${patientId}`);
      expectStatus(read, 200, `GET Patient/${patientId}`);
      assertValid(read.body, 'Patient read after the conditional update');
      assert.equal(read.body.meta.versionId, '2', 'the Patient is at version 2');
      assert.deepEqual(read.body.telecom.map((t) => t.value), [phone], 'with the new phone number');

      const again = await client.get(byIns);
      expectStatus(again, 200, `GET ${byIns} after the update`);
      assert.deepEqual(searchMatches(again.body, 'Patient', `GET ${byIns}`).map((p) => p.id), [patientId],
        'still exactly one Patient with this INS');
    });

    it('pages through _tag=system|code with _count=2 by next links: every Patient exactly once', async () => {
      const N = 5;
      const tag = { system: TAG_SYSTEM, code: `paging-${client.key}-${suffix}` };
      const ids = [];
      for (let i = 0; i < N; i += 1) {
        const r = await client.create(makePatient(randomIns(), `${ipp}-PAGE-${i}`, { meta: { tag: [tag] } }));
        expectStatus(r, 201, `POST Patient ${i} of ${N}`);
        ids.push(idFrom(r.headers.location, 'Patient', '1'));
      }
      const query = `Patient?_tag=${tag.system}|${tag.code}&_count=2`;
      const mark = tap.mark();
      const pages = await client.pages(query);
      expectOnWire(mark, 'GET', query);
      const seen = [];
      pages.forEach((page, n) => {
        const what = `page ${n + 1} of GET ${query}`;
        expectStatus(page, 200, what);
        expectBundle(page, 'searchset', what);
        const matches = searchMatches(page.body, 'Patient', what);
        assert.ok(matches.length >= 1 && matches.length <= 2, `${what} has ${matches.length} matches, _count=2`);
        seen.push(...matches.map((p) => p.id));
        assert.equal(Boolean(nextLink(page.body)), n < pages.length - 1, `${what}: a next link on every page but the last`);
      });
      assert.equal(pages.length, Math.ceil(N / 2), `${N} matches, 2 a page`);
      assert.deepEqual([...seen].sort(), [...ids].sort(), 'every tagged Patient exactly once across the pages');
    });

    it('posts a transaction: Patient by urn:uuid and an Observation referencing it; the reference is rewritten', async () => {
      const patientUrn = `urn:uuid:${randomUUID()}`;
      const txIns = randomIns();
      const bundle = {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: patientUrn,
            resource: makePatient(txIns, `${ipp}-TX`),
            request: { method: 'POST', url: 'Patient' },
          },
          {
            fullUrl: `urn:uuid:${randomUUID()}`,
            resource: {
              resourceType: 'Observation',
              status: 'final',
              category: [{
                coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }],
              }],
              code: { coding: [{ system: 'http://loinc.org', code: '29463-7', display: 'Body weight' }] },
              subject: { reference: patientUrn },
              effectiveDateTime: '2026-10-02T10:00:00+02:00',
              valueQuantity: { value: 61.5, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
            },
            request: { method: 'POST', url: 'Observation' },
          },
        ],
      };
      assertValid(bundle, 'the transaction Bundle sent');
      const r = await client.transaction(bundle);
      expectStatus(r, 200, `POST / (transaction) with ${client.name}`);
      expectBundle(r, 'transaction-response', 'transaction response');
      assert.equal(r.body.entry.length, 2, 'one response entry per request entry');
      for (const e of r.body.entry) {
        assert.ok(e.response && /^201\b/.test(e.response.status), `entry created: ${JSON.stringify(e.response)}`);
      }
      const pid = idFrom(r.body.entry[0].response.location, 'Patient');
      const oid = idFrom(r.body.entry[1].response.location, 'Observation');

      const observation = await client.get(`Observation/${oid}`);
      expectStatus(observation, 200, `GET Observation/${oid}`);
      assertValid(observation.body, 'Observation from the transaction');
      assert.equal(observation.body.subject.reference, `Patient/${pid}`, 'subject rewritten from the urn:uuid');
      const patient = await client.get(`Patient/${pid}`);
      expectStatus(patient, 200, `GET Patient/${pid}`);

      // And the weight is found the way a user looks for it, by code=system|code on the Patient.
      const query = `Observation?code=http://loinc.org|29463-7&subject=Patient/${pid}`;
      const mark = tap.mark();
      const found = await client.get(query);
      expectOnWire(mark, 'GET', query);
      expectStatus(found, 200, `GET ${query}`);
      assert.deepEqual(searchMatches(found.body, 'Observation', `GET ${query}`).map((o) => o.id), [oid]);

      // A feed that knows the patient by their INS only: a chained search, raw | and all.
      const chained = `Observation?code=http://loinc.org|29463-7&subject:Patient.identifier=${INS_SYSTEM}|${txIns}`;
      const chainMark = tap.mark();
      const byChain = await client.get(chained);
      expectOnWire(chainMark, 'GET', chained);
      expectStatus(byChain, 200, `GET ${chained}`);
      assert.deepEqual(searchMatches(byChain.body, 'Observation', `GET ${chained}`).map((o) => o.id), [oid]);
      const nobody = `Observation?code=http://loinc.org|29463-7&subject:Patient.identifier=${INS_SYSTEM}|${randomIns()}`;
      const none = await client.get(nobody);
      expectStatus(none, 200, `GET ${nobody}`);
      assert.deepEqual(searchMatches(none.body, 'Observation', `GET ${nobody}`), [], 'another INS: nothing');
    });
  });
}
