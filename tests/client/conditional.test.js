// Conditional create (If-None-Exist), as hospital feeds use it on the INS identifier.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  newClient, uniqueSuffix, randomIns, assertValid, expectFhirError, httpResponse, searchMatches,
  makePatient, INS_SYSTEM, IPP_SYSTEM,
} from './helpers.js';

const client = newClient();
const suffix = uniqueSuffix();

describe('conditional create (If-None-Exist)', () => {
  const ins = randomIns();
  const ipp = `IPP-COND-${suffix}`;
  const condition = `identifier=${encodeURIComponent(`${INS_SYSTEM}|${ins}`)}`;
  let firstId;

  it('creates the Patient when no match exists (201)', async () => {
    const created = await client.create({
      resourceType: 'Patient', body: makePatient(ins, ipp), options: { headers: { 'If-None-Exist': condition } },
    });
    assertValid(created, 'conditional create');
    const res = httpResponse(created);
    assert.equal(res.status, 201, `first conditional create should create: ${res.status}`);
    assert.ok(res.headers.get('location'), 'Location on create');
    firstId = created.id;
    assert.ok(firstId);
  });

  it('does not create a second one when the identifier matches (200, same id)', async () => {
    assert.ok(firstId, 'an earlier step failed');
    const again = await client.create({
      resourceType: 'Patient',
      body: makePatient(ins, `${ipp}-other`, { gender: 'male' }),
      options: { headers: { 'If-None-Exist': condition } },
    });
    const res = httpResponse(again);
    assert.equal(res.status, 200, `a matching If-None-Exist answers 200 OK (R4 http.html#ccreate), got ${res.status}`);
    if (again && again.resourceType) {
      assertValid(again, 'conditional create, match');
      assert.equal(again.id, firstId, 'returns the existing resource');
      assert.equal(again.gender, 'female', 'the existing resource is untouched');
    }
    const loc = res.headers.get('location');
    if (loc) assert.match(loc, new RegExp(`Patient/${firstId}`), `Location points to the existing resource: ${loc}`);
    const bundle = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${INS_SYSTEM}|${ins}`, _total: 'accurate' } });
    const ids = searchMatches(bundle, 'Patient', 'search after conditional creates').map((p) => p.id);
    assert.deepEqual(ids, [firstId], 'still exactly one Patient with this INS');
    const reread = await client.read({ resourceType: 'Patient', id: firstId });
    assert.equal(reread.meta.versionId, '1', 'the existing Patient was not updated');
  });

  it('answers 412 when the condition matches more than one resource', async () => {
    const shared = `SHARED-${suffix}`;
    for (const n of [1, 2]) {
      const p = makePatient(randomIns(), `${ipp}-${n}`);
      p.identifier.push({ system: `${IPP_SYSTEM}.shared`, value: shared });
      assertValid(await client.create({ resourceType: 'Patient', body: p }), `plain create ${n}`);
    }
    await expectFhirError(
      client.create({
        resourceType: 'Patient',
        body: makePatient(randomIns(), `${ipp}-3`),
        options: { headers: { 'If-None-Exist': `identifier=${encodeURIComponent(`${IPP_SYSTEM}.shared|${shared}`)}` } },
      }),
      412, 'POST Patient with If-None-Exist matching 2 Patients',
    );
  });
});
