// The pages' French and English texts: the same keys, none empty, the same {placeholders}.
import assert from 'node:assert/strict';
import test from 'node:test';

import { messages, translate } from '../../web/src/messages.js';

const placeholders = (text) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

test('French and English have the same keys', () => {
  const fr = Object.keys(messages.fr).sort();
  const en = Object.keys(messages.en).sort();
  assert.deepEqual(fr.filter((k) => !messages.en[k]), [], 'keys missing in English');
  assert.deepEqual(en.filter((k) => !messages.fr[k]), [], 'keys missing in French');
  assert.ok(fr.length > 100, `only ${fr.length} keys`);
});

test('no text is empty and both languages fill the same placeholders', () => {
  for (const key of Object.keys(messages.fr)) {
    assert.ok(messages.fr[key].trim(), `fr ${key} is empty`);
    assert.ok(messages.en[key].trim(), `en ${key} is empty`);
    assert.deepEqual(placeholders(messages.fr[key]), placeholders(messages.en[key]), `placeholders of ${key}`);
  }
});

test('every key the pages use exists', async () => {
  const { readdir, readFile } = await import('node:fs/promises');
  const root = new URL('../../web/src/', import.meta.url);
  const used = new Set();
  async function walk(dir) {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const url = new URL(e.name + (e.isDirectory() ? '/' : ''), dir);
      if (e.isDirectory()) await walk(url);
      else if (/\.(jsx?|mjs)$/.test(e.name) && e.name !== 'messages.js') {
        for (const m of (await readFile(url, 'utf8')).matchAll(/\bt\(\s*'([a-zA-Z0-9.-]+)'/g)) used.add(m[1]);
      }
    }
  }
  await walk(root);
  assert.ok(used.size > 50, `found only ${used.size} keys in use`);
  const missing = [...used].filter((k) => !(k in messages.fr) || !(k in messages.en));
  assert.deepEqual(missing, [], 'keys used by the pages but not defined');
});

test('translate fills placeholders and shows a missing key as itself', () => {
  assert.equal(translate('fr', 'kpis.days', { n: 12 }), '12 j');
  assert.equal(translate('en', 'kpis.days', { n: 12 }), '12 d');
  assert.equal(translate('en', 'no.such.key'), 'no.such.key');
});
