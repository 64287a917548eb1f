// Every error is an OperationOutcome (valid R4) with the right status (contract, "REST surface").
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { newClient, assertValid, expectFhirError, fhirFetch } from './helpers.js';

const client = newClient();

async function expectRawError(path, init, statuses, what) {
  const raw = await fhirFetch(path, init);
  assert.ok(statuses.includes(raw.status), `${what}: expected HTTP ${statuses.join(' or ')}, got ${raw.status}: ${raw.text}`);
  assert.equal(raw.json && raw.json.resourceType, 'OperationOutcome', `${what}: body should be an OperationOutcome: ${raw.text}`);
  assertValid(raw.json, `${what} OperationOutcome`);
  return raw;
}

describe('error responses', () => {
  it('unknown resource type: 404 (or 400)', async () => {
    await expectRawError('NotAResource/1', {}, [400, 404], 'GET /NotAResource/1');
  });

  it('invalid resource (bad code, bad date): 400', async () => {
    await expectFhirError(
      client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', gender: 'not-a-gender', birthDate: 'yesterday' } }),
      400, 'POST Patient with an invalid gender code and birthDate',
    );
  });

  it('body resourceType differing from the URL: 400', async () => {
    await expectFhirError(
      client.create({ resourceType: 'Patient', body: { resourceType: 'Observation', status: 'final', code: { text: 'x' } } }),
      400, 'POST Patient with an Observation body',
    );
  });

  it('malformed JSON: 400', async () => {
    await expectRawError('Patient', { method: 'POST', body: '{"resourceType": "Patient",' }, [400], 'POST Patient with truncated JSON');
  });

  it('unsupported media type: 415', async () => {
    await expectRawError('Patient', {
      method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<Patient xmlns="http://hl7.org/fhir"/>',
    }, [415], 'POST Patient as application/xml');
  });

  it('method not allowed: 405 with an Allow header', async () => {
    const raw = await expectRawError('metadata', { method: 'DELETE' }, [405], 'DELETE /metadata');
    assert.ok(raw.headers.get('allow'), 'a 405 carries Allow (RFC 9110 15.5.6)');
  });

  it('unknown search parameter: 400 (strict handling, as the CapabilityStatement says)', async () => {
    await expectFhirError(
      client.search({ resourceType: 'Patient', searchParams: { 'no-such-param': 'x' } }),
      400, 'GET Patient?no-such-param=x',
    );
  });

  it('malformed search value (bad date prefix): 400', async () => {
    await expectFhirError(
      client.search({ resourceType: 'Patient', searchParams: { birthdate: 'xx1950-03-04' } }),
      400, 'GET Patient?birthdate=xx1950-03-04',
    );
  });
});
