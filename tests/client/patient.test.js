// Patient life cycle through fhir-kit-client: create, read, search, update, If-Match, history,
// vread, delete. Every resource the server returns is checked against the R4 JSON schema.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  newClient, uniqueSuffix, randomIns, assertValid, expectFhirError, httpResponse, fhirFetch,
  searchMatches, makePatient, INS_SYSTEM, IPP_SYSTEM,
} from './helpers.js';

const client = newClient();
const suffix = uniqueSuffix();
const ins = randomIns();
const ipp = `IPP-${suffix}`;
const insToken = `${INS_SYSTEM}|${ins}`;

function need(value, what) {
  assert.ok(value, `an earlier step failed: no ${what}`);
  return value;
}

describe('Patient life cycle', () => {
  const state = {};

  it('creates a Patient with an INS identifier and an accented name (201, Location, ETag)', async () => {
    const created = await client.create({ resourceType: 'Patient', body: makePatient(ins, ipp) });
    const res = httpResponse(created);
    assert.equal(res.status, 201, 'create answers 201 Created');
    assertValid(created, 'create response');
    assert.equal(created.resourceType, 'Patient');
    assert.match(created.id || '', /^[A-Za-z0-9\-.]{1,64}$/, 'server-assigned id is a valid FHIR id');
    assert.equal(created.meta && created.meta.versionId, '1');
    assert.ok(created.meta.lastUpdated, 'meta.lastUpdated is set');
    assert.equal(created.name[0].family, 'Dupré', 'accents are stored as sent');
    assert.deepEqual(created.name[0].given, ['Hélène']);
    assert.ok(created.identifier.some((i) => i.system === INS_SYSTEM && i.value === ins));
    const location = res.headers.get('location');
    assert.ok(location, 'Location header on create');
    assert.match(location, new RegExp(`Patient/${created.id}(/_history/1)?$`), `Location: ${location}`);
    assert.equal(res.headers.get('etag'), 'W/"1"');
    assert.ok(res.headers.get('last-modified'), 'Last-Modified header on create');
    state.id = created.id;
  });

  it('reads it back', async () => {
    const id = need(state.id, 'Patient id');
    const patient = await client.read({ resourceType: 'Patient', id });
    assertValid(patient, 'read');
    const res = httpResponse(patient);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('etag'), 'W/"1"');
    assert.equal(patient.id, id);
    assert.equal(patient.meta.versionId, '1');
    assert.equal(patient.name[0].family, 'Dupré');
    assert.deepEqual(patient.name[0].given, ['Hélène']);
    assert.equal(patient.birthDate, '1950-03-04');
    assert.ok(patient.identifier.some((i) => i.system === INS_SYSTEM && i.value === ins));
  });

  it('finds it by INS identifier token (system|value)', async () => {
    const id = need(state.id, 'Patient id');
    const bundle = await client.search({ resourceType: 'Patient', searchParams: { identifier: insToken, _total: 'accurate' } });
    const found = searchMatches(bundle, 'Patient', `GET Patient?identifier=${insToken}`);
    assert.deepEqual(found.map((p) => p.id), [id]);
    assert.equal(bundle.total, 1, '_total=accurate gives total');
    found.forEach((p) => assertValid(p, 'search entry'));
  });

  it('finds it by identifier value alone and by the IPP system', async () => {
    const id = need(state.id, 'Patient id');
    const byValue = await client.search({ resourceType: 'Patient', searchParams: { identifier: ins } });
    assert.ok(searchMatches(byValue, 'Patient', `identifier=${ins}`).some((p) => p.id === id),
      `Patient?identifier=${ins} (value only) should find ${id}`);
    const byIpp = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${IPP_SYSTEM}|${ipp}` } });
    assert.deepEqual(searchMatches(byIpp, 'Patient', 'identifier=IPP').map((p) => p.id), [id]);
    // The same system with another value must not match.
    const other = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${INS_SYSTEM}|${ins}0` } });
    assert.deepEqual(searchMatches(other, 'Patient', 'identifier=other value'), []);
  });

  it('finds it through POST _search too', async () => {
    const id = need(state.id, 'Patient id');
    const bundle = await client.search({
      resourceType: 'Patient', searchParams: { identifier: insToken }, options: { postSearch: true },
    });
    assert.deepEqual(searchMatches(bundle, 'Patient', 'POST Patient/_search').map((p) => p.id), [id]);
  });

  // String search is case- and accent-insensitive, from the start of the value: each name part is a value (contract + R4 search.html#string).
  // Each query is ANDed with the run's identifier so that earlier runs' Hélènes do not page ours out.
  for (const [param, value, expected] of [
    ['name', 'helene', true],
    ['name', 'HELENE', true],
    ['name', 'Hélène', true],
    ['name', 'hél', true],
    ['name', 'dupre', true],
    ['name', 'DUPRÉ', true],
    ['family', 'dupre', true],
    ['given', 'helene', true],
    ['name', 'elene', false],
    ['name', 'helenex', false],
    ['family', 'helene', false],
    ['name:exact', 'Dupré', true],
    ['name:exact', 'dupre', false],
    ['name:contains', 'LEN', true],
    ['name:contains', 'upr', true],
  ]) {
    it(`search ${param}=${value} ${expected ? 'finds' : 'does not find'} Hélène Dupré`, async () => {
      const id = need(state.id, 'Patient id');
      const bundle = await client.search({ resourceType: 'Patient', searchParams: { [param]: value, identifier: insToken } });
      const ids = searchMatches(bundle, 'Patient', `Patient?${param}=${value}&identifier=…`).map((p) => p.id);
      if (expected) assert.deepEqual(ids, [id], `GET Patient?${param}=${encodeURIComponent(value)}&identifier=${insToken} should find ${id}`);
      else assert.deepEqual(ids, [], `GET Patient?${param}=${encodeURIComponent(value)}&identifier=${insToken} should find nothing`);
    });
  }

  it('name=helene alone (no other criterion) finds her, following next links if needed', async () => {
    const id = need(state.id, 'Patient id');
    let bundle = await client.search({ resourceType: 'Patient', searchParams: { name: 'helene', _count: 100 } });
    let found = false;
    for (let page = 0; page < 50 && bundle; page += 1) {
      if (searchMatches(bundle, 'Patient', `name=helene page ${page}`).some((p) => p.id === id)) { found = true; break; }
      bundle = await client.nextPage({ bundle });
    }
    assert.ok(found, `Patient?name=helene should find ${id}`);
  });

  // birthDate 1950-03-04: each prefix against the same day and its neighbours.
  for (const [query, expected] of [
    ['1950-03-04', true],
    ['eq1950-03-04', true],
    ['1950-03', true],
    ['1950', true],
    ['ne1950-03-04', false],
    ['gt1950-03-03', true],
    ['gt1950-03-04', false],
    ['ge1950-03-04', true],
    ['ge1950-03-05', false],
    ['lt1950-03-05', true],
    ['lt1950-03-04', false],
    ['le1950-03-04', true],
    ['le1950-03-03', false],
    ['sa1950-03-03', true],
    ['eb1950-03-05', true],
    ['eq1950-03-05', false],
  ]) {
    it(`search birthdate=${query} ${expected ? 'finds' : 'does not find'} her (born 1950-03-04)`, async () => {
      const id = need(state.id, 'Patient id');
      const bundle = await client.search({ resourceType: 'Patient', searchParams: { birthdate: query, identifier: insToken } });
      const ids = searchMatches(bundle, 'Patient', `birthdate=${query}`).map((p) => p.id);
      assert.deepEqual(ids, expected ? [id] : [], `GET Patient?birthdate=${query}&identifier=${insToken}`);
    });
  }

  it('birthdate range ge…&le… (two values ANDed) finds her', async () => {
    const id = need(state.id, 'Patient id');
    const bundle = await client.search({
      resourceType: 'Patient', searchParams: { birthdate: ['ge1950-01-01', 'le1950-12-31'], identifier: insToken },
    });
    assert.deepEqual(searchMatches(bundle, 'Patient', 'birthdate=ge&birthdate=le').map((p) => p.id), [id]);
    const outside = await client.search({
      resourceType: 'Patient', searchParams: { birthdate: ['ge1950-03-05', 'le1950-12-31'], identifier: insToken },
    });
    assert.deepEqual(searchMatches(outside, 'Patient', 'birthdate range outside'), []);
  });

  it('updates it (PUT with If-Match of the current version): version 2', async () => {
    const id = need(state.id, 'Patient id');
    const current = await client.read({ resourceType: 'Patient', id });
    const body = { ...current, telecom: [{ system: 'phone', value: '+33 1 23 45 67 89', use: 'mobile' }] };
    const updated = await client.update({
      resourceType: 'Patient', id, body, options: { headers: { 'If-Match': 'W/"1"' } },
    });
    assertValid(updated, 'update response');
    const res = httpResponse(updated);
    assert.equal(res.status, 200, 'update of an existing resource answers 200');
    assert.equal(updated.id, id);
    assert.equal(updated.meta.versionId, '2');
    assert.equal(res.headers.get('etag'), 'W/"2"');
    assert.equal(updated.telecom[0].value, '+33 1 23 45 67 89');
    assert.equal(updated.name[0].family, 'Dupré');
    const reread = await client.read({ resourceType: 'Patient', id });
    assertValid(reread, 'read after update');
    assert.equal(reread.meta.versionId, '2');
    assert.equal(reread.telecom[0].value, '+33 1 23 45 67 89');
  });

  it('refuses an update with a stale If-Match (412, OperationOutcome) and keeps version 2', async () => {
    const id = need(state.id, 'Patient id');
    const body = { ...makePatient(ins, ipp), id, gender: 'male' };
    await expectFhirError(
      client.update({ resourceType: 'Patient', id, body, options: { headers: { 'If-Match': 'W/"1"' } } }),
      412, `PUT Patient/${id} with If-Match: W/"1" (current is 2)`,
    );
    // The same with plain fetch, to see the raw exchange.
    const raw = await fhirFetch(`Patient/${id}`, { method: 'PUT', headers: { 'If-Match': 'W/"1"' }, body });
    assert.equal(raw.status, 412, `plain PUT with stale If-Match: ${raw.status} ${raw.text}`);
    assert.equal(raw.json && raw.json.resourceType, 'OperationOutcome');
    assertValid(raw.json, 'stale If-Match OperationOutcome');
    const reread = await client.read({ resourceType: 'Patient', id });
    assert.equal(reread.meta.versionId, '2', 'a refused update must not create a version');
    assert.equal(reread.gender, 'female');
  });

  it('instance history lists the 2 versions, newest first', async () => {
    const id = need(state.id, 'Patient id');
    const bundle = await client.history({ resourceType: 'Patient', id });
    assertValid(bundle, 'instance history');
    assert.equal(bundle.resourceType, 'Bundle');
    assert.equal(bundle.type, 'history');
    const entries = bundle.entry || [];
    assert.equal(entries.length, 2, `history should have 2 entries, got ${entries.length}`);
    if (bundle.total !== undefined) assert.equal(bundle.total, 2);
    const versions = entries.map((e) => e.resource && e.resource.meta && e.resource.meta.versionId);
    assert.deepEqual(versions, ['2', '1'], 'history is sorted newest first (R4 http.html#history)');
    entries.forEach((e) => {
      assert.equal(e.resource.id, id);
      assertValid(e.resource, 'history entry');
    });
    assert.equal(entries[0].request && entries[0].request.method, 'PUT', 'version 2 came from a PUT');
    assert.equal(entries[1].request && entries[1].request.method, 'POST', 'version 1 came from a POST');
  });

  it('vreads each version', async () => {
    const id = need(state.id, 'Patient id');
    const v1 = await client.vread({ resourceType: 'Patient', id, version: '1' });
    assertValid(v1, 'vread 1');
    assert.equal(v1.meta.versionId, '1');
    assert.equal(v1.telecom, undefined, 'version 1 had no telecom');
    assert.equal(httpResponse(v1).headers.get('etag'), 'W/"1"');
    const v2 = await client.vread({ resourceType: 'Patient', id, version: '2' });
    assertValid(v2, 'vread 2');
    assert.equal(v2.meta.versionId, '2');
    assert.equal(v2.telecom[0].value, '+33 1 23 45 67 89');
    await expectFhirError(client.vread({ resourceType: 'Patient', id, version: '99' }), 404, 'vread of a version that never existed');
  });

  it('refuses a delete with a stale If-Match (412) and keeps the resource', async () => {
    const id = need(state.id, 'Patient id');
    await expectFhirError(
      client.delete({ resourceType: 'Patient', id, options: { headers: { 'If-Match': 'W/"1"' } } }),
      412, `DELETE Patient/${id} with If-Match: W/"1" (current is 2)`,
    );
    const reread = await client.read({ resourceType: 'Patient', id });
    assert.equal(reread.meta.versionId, '2');
  });

  it('deletes it; read then answers 410 Gone with an OperationOutcome', async () => {
    const id = need(state.id, 'Patient id');
    const deleted = await client.delete({ resourceType: 'Patient', id });
    const res = httpResponse(deleted);
    assert.ok([200, 202, 204].includes(res.status), `DELETE answers 200/202/204, got ${res.status}`);
    if (deleted && deleted.resourceType) assertValid(deleted, 'delete response');
    await expectFhirError(client.read({ resourceType: 'Patient', id }), 410, `GET Patient/${id} after delete`);
    const bundle = await client.search({ resourceType: 'Patient', searchParams: { identifier: insToken } });
    assert.deepEqual(searchMatches(bundle, 'Patient', 'search after delete'), [], 'a deleted Patient is no longer found');
    // Older versions stay readable (R4 http.html#vread) and history records the deletion.
    const v2 = await client.vread({ resourceType: 'Patient', id, version: '2' });
    assertValid(v2, 'vread 2 after delete');
    const history = await client.history({ resourceType: 'Patient', id });
    assertValid(history, 'history after delete');
    assert.equal((history.entry || []).length, 3, 'history after delete has 3 entries (2 versions + the deletion)');
    assert.equal(history.entry[0].request && history.entry[0].request.method, 'DELETE');
  });

  it('PUT to an id that does not exist yet creates the resource with the client\'s id (201)', async () => {
    const id = `fls-ct-${suffix}`;
    const created = await client.update({
      resourceType: 'Patient', id, body: { ...makePatient(randomIns(), `${ipp}-put`), id },
    });
    assertValid(created, 'update-as-create');
    const res = httpResponse(created);
    assert.equal(res.status, 201, `PUT Patient/${id} on a new id answers 201 Created`);
    assert.equal(created.id, id);
    assert.equal(created.meta.versionId, '1');
    const read = await client.read({ resourceType: 'Patient', id });
    assertValid(read, 'read after update-as-create');
    assert.equal(read.name[0].family, 'Dupré');
  });

  it('refuses a PUT whose body id differs from the URL id (400)', async () => {
    const id = `fls-ct-${suffix}`;
    await expectFhirError(
      client.update({ resourceType: 'Patient', id, body: { ...makePatient(randomIns(), `${ipp}-put2`), id: `${id}-other` } }),
      400, `PUT Patient/${id} with body id ${id}-other`,
    );
  });

  it('answers 404 with an OperationOutcome for an unknown id', async () => {
    await expectFhirError(client.read({ resourceType: 'Patient', id: `unknown-${suffix}` }), 404, 'read of an unknown id');
  });
});
