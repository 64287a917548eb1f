// Transaction Bundles: urn:uuid references between new entries are rewritten to the ids the server
// assigns (R4 http.html#trules), and a transaction is all-or-nothing.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  newClient, uniqueSuffix, randomIns, assertValid, expectFhirError, httpResponse, searchMatches,
  makePatient, INS_SYSTEM,
} from './helpers.js';

const client = newClient();
const suffix = uniqueSuffix();

function fractureBundle(ins, ipp) {
  const patientUrn = `urn:uuid:${randomUUID()}`;
  const encounterUrn = `urn:uuid:${randomUUID()}`;
  const conditionUrn = `urn:uuid:${randomUUID()}`;
  const bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: patientUrn,
        resource: makePatient(ins, ipp),
        request: { method: 'POST', url: 'Patient' },
      },
      {
        fullUrl: encounterUrn,
        resource: {
          resourceType: 'Encounter',
          status: 'finished',
          class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'EMER', display: 'emergency' },
          subject: { reference: patientUrn },
          period: { start: '2026-10-02T09:30:00+02:00', end: '2026-10-02T18:00:00+02:00' },
        },
        request: { method: 'POST', url: 'Encounter' },
      },
      {
        fullUrl: conditionUrn,
        resource: {
          resourceType: 'Condition',
          clinicalStatus: {
            coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }],
          },
          verificationStatus: {
            coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }],
          },
          code: {
            coding: [{ system: 'http://hl7.org/fhir/sid/icd-10', code: 'S72.0', display: 'Fracture of neck of femur' }],
            text: 'Fracture du col du fémur',
          },
          subject: { reference: patientUrn },
          encounter: { reference: encounterUrn },
          onsetDateTime: '2026-10-02T08:15:00+02:00',
        },
        request: { method: 'POST', url: 'Condition' },
      },
    ],
  };
  return { bundle, patientUrn, encounterUrn, conditionUrn };
}

/** "Type/id" from a transaction-response entry (response.location, else the resource). */
function typeAndId(entry, type) {
  if (entry.response && entry.response.location) {
    const m = entry.response.location.match(new RegExp(`(?:^|/)${type}/([A-Za-z0-9\\-.]{1,64})(?:/_history/[^/]+)?$`));
    assert.ok(m, `response.location ${entry.response.location} names a ${type}`);
    return m[1];
  }
  assert.ok(entry.resource && entry.resource.resourceType === type, `entry has neither location nor ${type} resource`);
  return entry.resource.id;
}

describe('transaction Bundle', () => {
  const ins = randomIns();
  const ipp = `IPP-TX-${suffix}`;

  it('creates Patient + Encounter + Condition and rewrites urn:uuid references', async () => {
    const { bundle } = fractureBundle(ins, ipp);
    assertValid(bundle, 'the request Bundle itself');
    const response = await client.transaction({ body: bundle });
    assertValid(response, 'transaction-response');
    assert.equal(httpResponse(response).status, 200, 'a successful transaction answers 200');
    assert.equal(response.resourceType, 'Bundle');
    assert.equal(response.type, 'transaction-response');
    assert.equal((response.entry || []).length, 3, 'one response entry per request entry, in order');
    for (const e of response.entry) {
      assert.ok(e.response && /^201\b/.test(e.response.status), `entry status should be 201: ${JSON.stringify(e.response)}`);
      assert.ok(e.response.location, 'each created entry has response.location');
      assert.ok(e.response.etag === undefined || e.response.etag === 'W/"1"', `etag ${e.response.etag}`);
    }
    const patientId = typeAndId(response.entry[0], 'Patient');
    const encounterId = typeAndId(response.entry[1], 'Encounter');
    const conditionId = typeAndId(response.entry[2], 'Condition');

    // References inside returned resources (if the server returns them) are rewritten too.
    for (const e of response.entry) {
      if (e.resource) {
        assertValid(e.resource, 'transaction-response entry resource');
        assert.ok(!JSON.stringify(e.resource).includes('urn:uuid:'), `no urn:uuid left in ${e.resource.resourceType}`);
      }
    }

    const patient = await client.read({ resourceType: 'Patient', id: patientId });
    assertValid(patient, 'read Patient from transaction');
    assert.equal(patient.name[0].family, 'Dupré');
    assert.ok(patient.identifier.some((i) => i.system === INS_SYSTEM && i.value === ins));

    const encounter = await client.read({ resourceType: 'Encounter', id: encounterId });
    assertValid(encounter, 'read Encounter from transaction');
    assert.equal(encounter.subject.reference, `Patient/${patientId}`, 'Encounter.subject rewritten from urn:uuid');

    const condition = await client.read({ resourceType: 'Condition', id: conditionId });
    assertValid(condition, 'read Condition from transaction');
    assert.equal(condition.subject.reference, `Patient/${patientId}`, 'Condition.subject rewritten from urn:uuid');
    assert.equal(condition.encounter.reference, `Encounter/${encounterId}`, 'Condition.encounter rewritten from urn:uuid');

    // The rewritten references are searchable.
    const conditions = await client.search({ resourceType: 'Condition', searchParams: { patient: `Patient/${patientId}` } });
    assert.deepEqual(searchMatches(conditions, 'Condition', `Condition?patient=Patient/${patientId}`).map((c) => c.id), [conditionId]);
    const encounters = await client.search({ resourceType: 'Encounter', searchParams: { subject: `Patient/${patientId}` } });
    assert.deepEqual(searchMatches(encounters, 'Encounter', `Encounter?subject=Patient/${patientId}`).map((c) => c.id), [encounterId]);
  });

  it('is all-or-nothing: one invalid entry fails the whole transaction and nothing is stored', async () => {
    const txIns = randomIns();
    const { bundle } = fractureBundle(txIns, `${ipp}-rollback`);
    // Encounter.status is required and this code is not in its value set.
    bundle.entry[1].resource.status = 'not-a-status';
    const outcome = await expectFhirError(client.transaction({ body: bundle }), 400, 'transaction with an invalid Encounter');
    assert.ok(outcome.issue.some((i) => i.severity === 'error' || i.severity === 'fatal'));
    const patients = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${INS_SYSTEM}|${txIns}` } });
    assert.deepEqual(searchMatches(patients, 'Patient', 'search after failed transaction'), [],
      'the Patient of a failed transaction must not be stored');
  });

  it('honours ifNoneExist inside a transaction: the existing Patient is reused and referenced', async () => {
    const { bundle } = fractureBundle(ins, ipp); // same INS as the first test
    bundle.entry[0].request.ifNoneExist = `identifier=${INS_SYSTEM}|${ins}`;
    const response = await client.transaction({ body: bundle });
    assertValid(response, 'transaction-response with ifNoneExist');
    assert.ok(/^200\b/.test(response.entry[0].response.status), `matched ifNoneExist entry answers 200: ${JSON.stringify(response.entry[0].response)}`);
    const patients = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${INS_SYSTEM}|${ins}` } });
    const ids = searchMatches(patients, 'Patient', 'search after ifNoneExist').map((p) => p.id);
    assert.equal(ids.length, 1, 'still one Patient with this INS');
    const conditionId = typeAndId(response.entry[2], 'Condition');
    const condition = await client.read({ resourceType: 'Condition', id: conditionId });
    assert.equal(condition.subject.reference, `Patient/${ids[0]}`, 'urn:uuid of a matched entry resolves to the existing Patient');
  });
});
