// The CapabilityStatement, through fhir-kit-client's capabilityStatement().
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { newClient, assertValid, httpResponse } from './helpers.js';

describe('CapabilityStatement', () => {
  let cs;
  before(async () => {
    cs = await newClient().capabilityStatement();
  });

  it('is a valid R4 CapabilityStatement served as application/fhir+json', () => {
    assertValid(cs, 'GET /metadata');
    assert.equal(cs.resourceType, 'CapabilityStatement');
    assert.equal(cs.fhirVersion, '4.0.1');
    assert.equal(cs.kind, 'instance');
    assert.ok(Array.isArray(cs.format) && cs.format.some((f) => /json/.test(f)), `format: ${JSON.stringify(cs.format)}`);
    const res = httpResponse(cs);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') || '', /^application\/fhir\+json/);
  });

  it('declares transaction and batch at the system level', () => {
    const rest = cs.rest && cs.rest.find((r) => r.mode === 'server');
    assert.ok(rest, 'a rest entry with mode server');
    const codes = (rest.interaction || []).map((i) => i.code);
    assert.ok(codes.includes('transaction'), `system interactions: ${JSON.stringify(codes)}`);
    assert.ok(codes.includes('batch'), `system interactions: ${JSON.stringify(codes)}`);
  });

  it('declares for Patient every interaction and search parameter this suite uses', () => {
    const rest = cs.rest.find((r) => r.mode === 'server');
    const patient = (rest.resource || []).find((r) => r.type === 'Patient');
    assert.ok(patient, 'Patient is listed');
    const interactions = (patient.interaction || []).map((i) => i.code);
    for (const code of ['read', 'vread', 'update', 'delete', 'history-instance', 'create', 'search-type']) {
      assert.ok(interactions.includes(code), `Patient interaction ${code} missing: ${JSON.stringify(interactions)}`);
    }
    assert.equal(patient.conditionalCreate, true, 'conditionalCreate');
    assert.ok(['versioned', 'versioned-update'].includes(patient.versioning), `versioning: ${patient.versioning}`);
    const params = new Map((patient.searchParam || []).map((p) => [p.name, p.type]));
    assert.equal(params.get('identifier'), 'token');
    assert.equal(params.get('name'), 'string');
    assert.equal(params.get('family'), 'string');
    assert.equal(params.get('given'), 'string');
    assert.equal(params.get('birthdate'), 'date');
  });

  it('declares Encounter and Condition with create and search-type', () => {
    const rest = cs.rest.find((r) => r.mode === 'server');
    for (const type of ['Encounter', 'Condition']) {
      const r = (rest.resource || []).find((x) => x.type === type);
      assert.ok(r, `${type} is listed`);
      const interactions = (r.interaction || []).map((i) => i.code);
      for (const code of ['read', 'create', 'search-type']) {
        assert.ok(interactions.includes(code), `${type} interaction ${code} missing`);
      }
      const params = (r.searchParam || []).map((p) => p.name);
      assert.ok(params.includes('patient') || params.includes('subject'), `${type} searchable by patient/subject`);
    }
  });
});
