// A batch Bundle of Patients, then a search paged through its next links: every match exactly once.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  newClient, uniqueSuffix, randomIns, assertValid, httpResponse, searchMatches, makePatient, IPP_SYSTEM,
} from './helpers.js';

const client = newClient();
const suffix = uniqueSuffix();
const COHORT_SYSTEM = `${IPP_SYSTEM}.cohort`;
const cohort = `COHORT-${suffix}`;
const N = 7;

describe('batch and paged search', () => {
  const ids = [];

  it(`creates ${N} Patients in one batch Bundle (each entry on its own)`, async () => {
    const entry = [];
    for (let i = 0; i < N; i += 1) {
      const p = makePatient(randomIns(), `IPP-PAGE-${suffix}-${i}`);
      p.identifier.push({ system: COHORT_SYSTEM, value: cohort });
      entry.push({ resource: p, request: { method: 'POST', url: 'Patient' } });
    }
    // One entry that must fail on its own without spoiling the others.
    entry.push({ resource: { resourceType: 'Patient', gender: 'not-a-gender' }, request: { method: 'POST', url: 'Patient' } });
    const response = await client.batch({ body: { resourceType: 'Bundle', type: 'batch', entry } });
    assertValid(response, 'batch-response');
    assert.equal(httpResponse(response).status, 200);
    assert.equal(response.type, 'batch-response');
    assert.equal(response.entry.length, N + 1);
    for (const e of response.entry.slice(0, N)) {
      assert.ok(/^201\b/.test(e.response.status), `batch entry: ${JSON.stringify(e.response)}`);
      const m = (e.response.location || '').match(/Patient\/([A-Za-z0-9\-.]{1,64})/);
      assert.ok(m, `location ${e.response.location}`);
      ids.push(m[1]);
    }
    const bad = response.entry[N].response;
    assert.ok(/^4\d\d\b/.test(bad.status), `the invalid entry fails alone with a 4xx: ${JSON.stringify(bad)}`);
    if (bad.outcome) {
      assert.equal(bad.outcome.resourceType, 'OperationOutcome');
      assertValid(bad.outcome, 'batch entry outcome');
    }
  });

  it('pages through the matches with _count=3 and next links: each exactly once, total accurate', async () => {
    assert.equal(ids.length, N, 'an earlier step failed');
    let bundle = await client.search({
      resourceType: 'Patient', searchParams: { identifier: `${COHORT_SYSTEM}|${cohort}`, _count: 3, _total: 'accurate' },
    });
    assert.equal(bundle.total, N, 'total with _total=accurate');
    const seen = [];
    let pages = 0;
    while (bundle) {
      const page = searchMatches(bundle, 'Patient', `page ${pages}`);
      assert.ok(page.length <= 3, `page ${pages} has ${page.length} entries > _count=3`);
      page.forEach((p) => assertValid(p, 'paged entry'));
      seen.push(...page.map((p) => p.id));
      pages += 1;
      assert.ok(pages <= N, 'too many pages');
      const hasNext = (bundle.link || []).some((l) => l.relation === 'next');
      if (pages < Math.ceil(N / 3)) assert.ok(hasNext, `page ${pages} of ${Math.ceil(N / 3)} needs a next link`);
      bundle = hasNext ? await client.nextPage({ bundle }) : null;
    }
    assert.equal(pages, Math.ceil(N / 3), 'number of pages');
    assert.deepEqual([...seen].sort(), [...ids].sort(), 'every match exactly once across pages');
  });

  it('a _summary=count search gives the total and no entries', async () => {
    const bundle = await client.search({
      resourceType: 'Patient', searchParams: { identifier: `${COHORT_SYSTEM}|${cohort}`, _summary: 'count' },
    });
    assertValid(bundle, '_summary=count');
    assert.equal(bundle.type, 'searchset');
    assert.equal(bundle.total, N);
    assert.equal((bundle.entry || []).length, 0);
  });
});
