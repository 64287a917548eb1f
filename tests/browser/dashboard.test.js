// The quality dashboard in real headless Chromium: a quality analyst signs in through /login,
// the dashboard shows for a region exactly what $evaluate-measure answers for each indicator,
// then for one site; the goals, the levels and the projection with a "what if"; in French and
// English; with no console error, no serious or critical axe-core violation, no horizontal
// scrolling at 200% zoom; a coordinator asking about a region that is not theirs reads why, in
// words. Screenshots go to build/screenshots (FLS_SCREENSHOT_DIR).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import {
  BASE_URL, SCREENSHOTS, accessibilityProblems, addUser, api, day, drug, enrol, event, fracture, launch, newPage,
  organization, signIn, spaces, unique, waitFor, waiveAll,
} from './helpers.js';

const u = unique();
const REGION = `dash-r-${u}`;
const SITE_A = `dash-a-${u}`;
const SITE_B = `dash-b-${u}`;
const P = { start: day(-300), end: day(-30) };
const B = { start: day(-360), end: day(-301) };
let browser;

// A region of two sites: A with an expected caseload of 120 fractures a year, B with none.
//   baseline: A hip.
//   period:   A hip (assessed on day 20, treated on day 40), A wrist (assessed on day 100, late),
//             A vertebra (nothing done yet); B hip (declined on day 5).
before(async () => {
  await organization(REGION, null, 0);
  await organization(SITE_A, REGION, 120);
  await organization(SITE_B, REGION, 0);
  await fracture(SITE_A, day(-340));
  const a1 = await fracture(SITE_A, day(-250));
  await enrol(a1, day(-230));
  await waiveAll(a1, day(-225));
  await drug(a1, 'decide-treatment', day(-220));
  await drug(a1, 'treatment-started', day(-210));
  const a2 = await fracture(SITE_A, day(-200), 'S52.5');
  await enrol(a2, day(-100));
  await fracture(SITE_A, day(-150), 'S22.0');
  const b1 = await fracture(SITE_B, day(-120));
  await event(b1, 'exclude', day(-115), [{ name: 'reason', valueCode: 'declined' }]);
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

const baseline = `&baselineStart=${B.start}&baselineEnd=${B.end}`;

// The oracle: every Measure's score for the subject, by $evaluate-measure.
async function evaluate(ids, subject) {
  const out = {};
  for (const id of ids) {
    const extra = id.startsWith('ctf-') ? baseline : '';
    const r = await api('GET', `/Measure/${id}/$evaluate-measure?periodStart=${P.start}&periodEnd=${P.end}&subject=${subject}${extra}`);
    assert.equal(r.status, 200, `${id}: ${r.text.slice(0, 200)}`);
    out[id] = r.json.group[0].measureScore?.value ?? null;
  }
  return out;
}

async function shownScores(page) {
  return page.$$eval('[data-testid^="score-"]', (cells) => cells.map((c) => ({
    id: c.dataset.testid.slice('score-'.length),
    score: c.dataset.score === '' ? null : Number(c.dataset.score),
    text: c.textContent,
  })));
}

function sameScores(shown, oracle, where) {
  assert.ok(shown.length >= 18, `${where}: only ${shown.length} indicators shown`);
  for (const s of shown) {
    const want = oracle[s.id];
    if (want === null) {
      assert.equal(s.score, null, `${where} ${s.id}: shows ${s.score}, $evaluate-measure has no score`);
    } else {
      const tolerance = s.id.includes('median') ? 0.05 : 1e-4;
      assert.ok(s.score !== null && Math.abs(s.score - want) <= tolerance, `${where} ${s.id}: shows ${s.score}, $evaluate-measure ${want}`);
    }
  }
}

const percentText = (lang, v) => spaces(new Intl.NumberFormat(lang === 'fr' ? 'fr-FR' : 'en-GB',
  { style: 'percent', minimumFractionDigits: 1, maximumFractionDigits: 1 }).format(v));

async function noHorizontalScroll(page) {
  return page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1);
}

test('the dashboard shows what $evaluate-measure answers, for a region and a site, in French and English', async () => {
  const analyst = addUser('quality');
  const { page, errors, context } = await newPage(browser);
  const url = `${BASE_URL}/dashboard?periodStart=${P.start}&periodEnd=${P.end}&subject=Organization/${REGION}${baseline}`;
  await page.goto(url);
  // Not signed in: the page sends the browser to /login, which comes back here.
  await page.waitForURL(/\/login/);
  await signIn(page, analyst);
  await waitFor(page, `[data-testid="dashboard"][data-subject="Organization/${REGION}"]`, errors);
  assert.match(page.url(), /\/dashboard\?/);
  assert.equal(await page.getAttribute('html', 'lang'), 'fr');
  assert.equal(spaces(await page.textContent('h1')), 'Tableau de bord qualité — Filière fracture (FLS)');

  const shown = await shownScores(page);
  const ids = shown.map((s) => s.id);
  for (const id of ['fls-db-kpi-1', 'fls-db-kpi-11', 'fls-median-days-to-assessment', 'ctf-active-sites', 'ctf-hip-vertebral-change']) {
    assert.ok(ids.includes(id), `${id} is not shown`);
  }
  const region = await evaluate(ids, `Organization/${REGION}`);
  sameScores(shown, region, 'region');
  // The words on the screen are those numbers, as French writes them.
  const kpi4 = shown.find((s) => s.id === 'fls-db-kpi-4');
  assert.equal(spaces(kpi4.text), percentText('fr', region['fls-db-kpi-4']));
  assert.ok(region['fls-db-kpi-4'] > 0, 'the fixture has assessed cases');

  // Sites side by side: each site's cell is that site's $evaluate-measure.
  const siteA = await evaluate(ids, `Organization/${SITE_A}`);
  const siteB = await evaluate(ids, `Organization/${SITE_B}`);
  for (const [site, oracle] of [[SITE_A, siteA], [SITE_B, siteB]]) {
    const cells = await page.$$eval(`[data-testid="site-${site}"] [data-measure]`, (tds) => tds.map((c) => ({
      id: c.dataset.measure, score: c.dataset.score === '' ? null : Number(c.dataset.score),
    })));
    assert.equal(cells.length, 11, `site ${site}: the framework's 11 indicators`);
    for (const c of cells) {
      const want = oracle[c.id];
      assert.ok(want === null ? c.score === null : Math.abs(c.score - want) < 1e-4, `site ${site} ${c.id}: ${c.score} vs ${want}`);
    }
  }

  // The goals: two active sites against one, as the Measure says.
  assert.equal(region['ctf-active-sites'], 2);
  assert.match(spaces(await page.textContent('[data-testid="goal-active-sites"]')), /× 2/);
  assert.match(spaces(await page.textContent('[data-testid="goal-active-sites"]')), /2 sites actifs contre 1/);

  await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-region-fr.png'), fullPage: true });
  assert.deepEqual(await accessibilityProblems(page), [], 'axe-core on the French dashboard');

  // What if every patient to treat started treatment and kept to it: the page shows the server's
  // projection for those rates (adherence at 12 months is not measured yet for this period).
  assert.match(spaces(await page.textContent('[data-testid="projection-section"]')), /Taux inconnu sur la période : observance à 12 mois/);
  for (const rate of ['treatment', 'adherence']) {
    await page.focus(`#what-if-${rate}`);
    await page.keyboard.press('End');
  }
  await waitFor(page, '[data-testid="what-if-points"] [data-avoided]', errors);
  const oracle = await api('GET', `/$fls-projection?periodStart=${P.start}&periodEnd=${P.end}&subject=Organization/${REGION}&treatment=1&adherence=1`);
  assert.equal(oracle.status, 200, oracle.text);
  assert.deepEqual(oracle.json.projection.missing, []);
  await page.waitForFunction((want) => JSON.stringify([...document.querySelectorAll('[data-testid="what-if-points"] [data-avoided]')]
    .map((c) => Number(c.dataset.avoided))) === JSON.stringify(want), oracle.json.projection.points.map((p) => p.avoided));
  assert.ok(oracle.json.projection.points[2].avoided > 0);

  // One site.
  await page.selectOption('#subject', `Organization/${SITE_A}`);
  await page.click('form.filters button[type=submit]');
  await waitFor(page, `[data-testid="dashboard"][data-subject="Organization/${SITE_A}"]`, errors);
  sameScores(await shownScores(page), siteA, 'site A');
  assert.match(page.url(), new RegExp(`subject=Organization%2F${SITE_A}`));

  // English: the words and the way numbers are written change, the numbers do not.
  await page.click('[data-testid="language"]');
  await waitFor(page, 'html[lang="en"]', errors);
  assert.equal(spaces(await page.textContent('h1')), 'Quality dashboard — Fracture Liaison Service (FLS)');
  const english = await shownScores(page);
  sameScores(english, siteA, 'site A in English');
  assert.equal(spaces(english.find((s) => s.id === 'fls-db-kpi-4').text), percentText('en', siteA['fls-db-kpi-4']));
  await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-site-en.png'), fullPage: true });
  assert.deepEqual(await accessibilityProblems(page), [], 'axe-core on the English dashboard');

  // The language is kept for the next visit.
  await page.reload();
  await waitFor(page, '[data-testid="dashboard"]', errors);
  assert.equal(await page.getAttribute('html', 'lang'), 'en');

  // A tablet, and 200% zoom on a 1366x768 screen (683x384 CSS pixels): no sideways scrolling.
  for (const [name, viewport] of [['tablet', { width: 768, height: 1024 }], ['zoom-200', { width: 683, height: 384 }]]) {
    await page.setViewportSize(viewport);
    await page.waitForTimeout(100);
    assert.ok(await noHorizontalScroll(page), `${name}: the page scrolls sideways`);
    await page.screenshot({ path: join(SCREENSHOTS, `dashboard-${name}.png`), fullPage: true });
  }

  // Keyboard only: the skip link comes first and lands on the content.
  await page.setViewportSize({ width: 1366, height: 768 });
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.className), 'skip');

  await context.close();
  const unexpected = errors.filter((e) => !/status of 401 .*\/auth\/session/.test(e));
  assert.deepEqual(unexpected, [], 'no console error but the 401 of /auth/session before signing in');
});

test('a coordinator asking about a region that is not all theirs reads why, in words', async () => {
  const coordinator = addUser('coordinator', ['--sites', `Organization/${SITE_A}`]);
  const { page, errors, context } = await newPage(browser);
  await page.goto(`${BASE_URL}/login?next=${encodeURIComponent(`/dashboard?periodStart=${P.start}&periodEnd=${P.end}&subject=Organization/${REGION}&lang=fr`)}`);
  await signIn(page, coordinator);
  await waitFor(page, '[data-testid="error"]', errors);
  assert.match(spaces(await page.textContent('[data-testid="error"]')), /Votre rôle ne donne pas accès à ces indicateurs, ou ce site n’est pas le vôtre/);
  assert.deepEqual(await accessibilityProblems(page), [], 'axe-core on the error');
  // Their own site works.
  await page.selectOption('#subject', `Organization/${SITE_A}`);
  await page.click('form.filters button[type=submit]');
  await waitFor(page, `[data-testid="dashboard"][data-subject="Organization/${SITE_A}"]`, errors);
  await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-coordinator.png'), fullPage: true });
  await context.close();
  // The refusal itself is the only request that failed (a 403 the page explains).
  assert.deepEqual(errors.filter((e) => !/status of 403 .*\$fls-dashboard/.test(e)), [], 'no console error but the explained 403');
});
