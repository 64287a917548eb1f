// What the browser tests share (not a test file): the server under test, an administrator's
// requests to seed it, people's accounts, and Debian's Chromium driven by playwright-core.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { chromium } from 'playwright-core';

function required(name, hint) {
  const v = process.env[name];
  if (!v || !v.trim()) throw new Error(`${name} is not set: ${hint} (./deploy/fls test sets it)`);
  return v.trim();
}

export const BASE_URL = required('FLS_BASE_URL', 'the server under test, e.g. http://127.0.0.1:8091').replace(/\/+$/, '');
const TOKEN = required('FLS_TOKEN', "an administrator's bearer token");
const SERVER_BIN = required('FLS_SERVER_BIN', 'build/fls-server, to add the test accounts');
const DATABASE_URL = required('FLS_DATABASE_URL', "the server's database, to add the test accounts");
export const SCREENSHOTS = process.env.FLS_SCREENSHOT_DIR || new URL('../../build/screenshots/', import.meta.url).pathname;
mkdirSync(SCREENSHOTS, { recursive: true });

export const unique = () => randomBytes(4).toString('hex');

// An administrator's request (the seeding, and the oracle: $evaluate-measure).
export async function api(method, path, body) {
  const r = await fetch(BASE_URL + path, {
    method,
    headers: {
      Authorization: `Bearer ${TOKEN}`,
      Accept: 'application/fhir+json',
      ...(body ? { 'Content-Type': 'application/fhir+json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: r.status, json, text, headers: r.headers };
}

export async function ok(method, path, body) {
  const r = await api(method, path, body);
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path}: ${r.status} ${r.text.slice(0, 300)}`);
  return r.json;
}

// A login of `role` with a password, through the server's own command (./deploy/fls user add).
export function addUser(role, extra = []) {
  const login = `web-${role}-${unique()}`;
  const password = `a long enough password ${unique()}`;
  execFileSync(SERVER_BIN, ['user', 'add', '--login', login, '--role', role, ...extra], {
    input: `${password}\n`,
    env: { ...process.env, FLS_DATABASE_URL: DATABASE_URL },
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  return { login, password };
}

// YYYY-MM-DD `n` days from today (UTC).
export function day(n) {
  const d = new Date();
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + n)).toISOString().slice(0, 10);
}
export function plus(text, n) {
  const [y, m, d] = text.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}

export async function organization(id, partOf, caseloadPerYear) {
  const org = { resourceType: 'Organization', id, name: `FLS ${id}` };
  if (partOf) org.partOf = { reference: `Organization/${partOf}` };
  if (caseloadPerYear) {
    org.extension = [{
      url: 'http://fls-server.org/fhir/StructureDefinition/fls-expected-caseload', valueInteger: caseloadPerYear,
    }];
  }
  await ok('PUT', `/Organization/${id}`, org);
}

// A fracture as an EHR pushes it: a transaction of the Encounter at `site` and the Condition
// (WHO ICD-10 `code`), for a new patient unless `patient` is given. Answers the case opened.
export async function fracture(site, date, code = 'S72.0', patient = null) {
  let pid = patient;
  if (!pid) {
    const p = await ok('POST', '/Patient', {
      resourceType: 'Patient', gender: 'female', birthDate: '1941-05-06',
      name: [{ family: `Durand-${unique()}`, given: ['Jeanne'] }],
      identifier: [{ system: 'urn:test:browser', value: unique() }],
    });
    pid = p.id;
  }
  const enc = 'urn:uuid:1e1e1e1e-0000-4000-8000-000000000001';
  await ok('POST', '/', {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: enc,
        resource: {
          resourceType: 'Encounter', status: 'finished',
          class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'EMER' },
          subject: { reference: `Patient/${pid}` }, serviceProvider: { reference: `Organization/${site}` },
          period: { start: `${date}T10:00:00+01:00` },
        },
        request: { method: 'POST', url: 'Encounter' },
      },
      {
        resource: {
          resourceType: 'Condition', subject: { reference: `Patient/${pid}` }, encounter: { reference: enc },
          onsetDateTime: date, code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10', code }] },
        },
        request: { method: 'POST', url: 'Condition' },
      },
    ],
  });
  const cases = await ok('GET', `/EpisodeOfCare?patient=Patient/${pid}&_sort=-_lastUpdated`);
  const episode = cases.entry?.[0]?.resource?.id;
  assert.ok(episode, `no case opened for the fracture of ${date}`);
  return { patient: pid, episode, date };
}

const at = (date) => `${date}T12:00:00+01:00`;

export async function event(c, code, date, parameters = []) {
  return ok('POST', `/EpisodeOfCare/${c.episode}/$event`, {
    resourceType: 'Parameters',
    parameter: [{ name: 'event', valueCode: code }, ...parameters, { name: 'occurred', valueDateTime: at(date) }],
  });
}

export async function enrol(c, date) {
  const doctor = await ok('POST', '/Practitioner', { resourceType: 'Practitioner', name: [{ family: 'Martin' }] });
  return event(c, 'enrol', date, [
    { name: 'consent-programme', valueBoolean: true }, { name: 'consent-report', valueBoolean: true },
    { name: 'phone', valueString: '+33 6 00 00 00 00' },
    { name: 'referring-physician', valueReference: { reference: `Practitioner/${doctor.id}` } },
  ]);
}

export async function waiveAll(c, date) {
  const orders = await ok('GET', `/ServiceRequest?patient=Patient/${c.patient}&status=active&_count=100`);
  for (const e of orders.entry || []) {
    await event(c, 'waive', date, [
      { name: 'item', valueReference: { reference: `ServiceRequest/${e.resource.id}` } },
      { name: 'reason', valueString: 'done elsewhere' },
    ]);
  }
}

export async function drug(c, code, date) {
  return event(c, code, date, [{ name: 'drug', valueCodeableConcept: { coding: [{ system: 'http://www.whocc.no/atc', code: 'M05BA04' }] } }]);
}

// Debian's Chromium, headless, offline (../shared/notes/node.md); playwright-core gives each
// launch a fresh, empty profile of its own.
export async function launch() {
  return chromium.launch({
    executablePath: process.env.FLS_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

// A page that records every console error and uncaught exception (the tests assert none but
// those they expect, such as the 401 of /auth/session before signing in, which Chromium logs).
export async function newPage(browser, options = {}) {
  const context = await browser.newContext({
    viewport: { width: 1366, height: 768 }, locale: 'fr-FR', timezoneId: 'Europe/Paris', ...options,
  });
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()} (${m.location()?.url || ''})`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    if (r.failure()?.errorText !== 'net::ERR_ABORTED') errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  return { context, page, errors };
}

// Signs in through the server's /login form.
export async function signIn(page, user) {
  await page.fill('#login', user.login);
  await page.fill('#password', user.password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
}

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

// axe-core's serious and critical violations on the page as it is (WCAG 2.1 A and AA rules).
// Evaluated through the DevTools protocol, so the page's Content-Security-Policy stays on.
export async function accessibilityProblems(page) {
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  return result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

// Text as written, whatever space a locale puts in it.
export const spaces = (s) => String(s).replace(/[\s\u00a0\u202f]+/g, ' ').trim();

// Waits for `selector`; on a timeout the error says what the page showed and logged.
export async function waitFor(page, selector, errors = []) {
  try {
    return await page.waitForSelector(selector, { timeout: 15000 });
  } catch (e) {
    const text = await page.evaluate(() => document.body?.innerText || '').catch(() => '');
    throw new Error(`${selector} did not appear at ${page.url()}\npage: ${spaces(text).slice(0, 600)}\nlogged: ${errors.join('\n')}`);
  }
}
