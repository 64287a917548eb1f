// The schema check itself must not be vacuous: it accepts a valid resource and refuses invalid ones.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertValid, makePatient } from './helpers.js';

describe('assertValid (R4 JSON schema)', () => {
  it('accepts a valid Patient and a 4.0.1 CapabilityStatement', () => {
    assertValid(makePatient('123456789012345', 'IPP-1'));
    assertValid({
      resourceType: 'CapabilityStatement', status: 'active', date: '2026-01-01', kind: 'instance',
      fhirVersion: '4.0.1', format: ['json'],
    });
  });

  for (const [what, resource] of [
    ['an unknown element', { resourceType: 'Patient', colour: 'blue' }],
    ['a bad code', { resourceType: 'Patient', gender: 'unknown-gender' }],
    ['a bad date', { resourceType: 'Patient', birthDate: '04/03/1950' }],
    ['a bad id', { resourceType: 'Patient', id: 'not valid!' }],
    ['an OperationOutcome without issue', { resourceType: 'OperationOutcome' }],
    ['an unknown resourceType', { resourceType: 'Fracture' }],
  ]) {
    it(`refuses ${what}`, () => {
      assert.throws(() => assertValid(resource), /not valid against the FHIR R4 JSON schema|Invalid resourceType/);
    });
  }
});
