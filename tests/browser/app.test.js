// The coordinators' app in real headless Chromium (issue 12): a coordinator takes a pushed hip
// fracture to follow-up through the screens only; three unanswered calls on three days raise the
// "patient unreachable" Task; two coordinators edit one case and the second is told, with the
// fresh state, that someone else changed it (412). No console error but the expected ones, no
// serious or critical axe-core violation, French and English. Screenshots go to build/screenshots.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import {
  BASE_URL, SCREENSHOTS, accessibilityProblems, addUser, day, drug, enrol, event, fracture, launch, newPage, ok,
  organization, signIn, spaces, unique, waitFor, waiveAll,
} from './helpers.js';

const u = unique();
const SITE = `app-s-${u}`;
let browser;
let nurse;
let colleague;
let doctor;
let nursePractitioner;
let siteNurse;

before(async () => {
  await organization(SITE, null, 300);
  // The nurse's login is a Practitioner (her fhirUser); a colleague nurse of the site is declared
  // by a PractitionerRole, as a hospital's directory feeds them.
  nursePractitioner = await ok('POST', '/Practitioner', { resourceType: 'Practitioner', name: [{ family: 'Bernard', given: ['Claire'] }] });
  siteNurse = await ok('POST', '/Practitioner', { resourceType: 'Practitioner', name: [{ family: 'Moreau', given: ['Léa'] }] });
  await ok('POST', '/PractitionerRole', {
    resourceType: 'PractitionerRole', active: true, practitioner: { reference: `Practitioner/${siteNurse.id}` },
    organization: { reference: `Organization/${SITE}` },
    code: [{ coding: [{ system: 'http://snomed.info/sct', code: '224535009', display: 'Registered nurse' }] }],
  });
  nurse = addUser('coordinator', ['--sites', `Organization/${SITE}`, '--practitioner', `Practitioner/${nursePractitioner.id}`]);
  colleague = addUser('coordinator', ['--sites', `Organization/${SITE}`]);
  doctor = await ok('POST', '/Practitioner', { resourceType: 'Practitioner', name: [{ family: 'Lefèvre', given: ['Anne'] }] });
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

// JPEG: docs/coordinator-app.md shows copies of them.
const shot = (page, name) => page.screenshot({ path: join(SCREENSHOTS, `app-${name}.jpg`), fullPage: true, type: 'jpeg', quality: 70 });
const stageIs = (page, stage, errors) => waitFor(page, `[data-testid="case"][data-stage="${stage}"][aria-busy="false"]`, errors);
// What Chromium logs for an answer the test provokes on purpose, and the 401 before signing in.
const expected = (e, statuses = []) => /status of 401 .*\/auth\/session/.test(e) || statuses.some((s) => e.includes(`status of ${s}`));

async function nameOf(c) {
  const p = await ok('GET', `/Patient/${c.patient}`);
  return p.name[0];
}

async function noAccessibilityProblem(page, where) {
  const problems = await accessibilityProblems(page);
  assert.deepEqual(problems, [], `${where}: ${JSON.stringify(problems, null, 1)}`);
}

test('a hip fracture pushed by the EHR is taken to follow-up through the screens only', async () => {
  const c = await fracture(SITE, day(-10));
  const name = await nameOf(c);
  const { page, errors, context } = await newPage(browser);
  await page.goto(`${BASE_URL}/app`);
  await waitFor(page, '#login', errors);
  await signIn(page, nurse);
  // The worklist: the new case's "assess and enrol" Task, found by the patient's name.
  await waitFor(page, '[data-testid="worklist"][data-refreshed]:not([data-refreshed=""])', errors);
  await page.fill('[data-testid="search"]', name.family.slice(0, 6));
  const row = await waitFor(page, `[data-testid="task-row"][data-case="${c.episode}"][data-kind="assess-enrol"]`, errors);
  assert.match(spaces(await row.textContent()), /Évaluer et inclure/);
  assert.match(spaces(await row.textContent()), /Repéré/);
  assert.match(spaces(await row.textContent()), new RegExp(`FLS ${SITE}`), 'the site by its name');
  assert.ok(Number(await page.textContent('[data-testid="count-identified"]')) >= 1, 'the identified count holds the case');
  await shot(page, '1-worklist');
  await noAccessibilityProblem(page, 'worklist');

  // The case: the patient, the hip fracture, the stage and the enrolment form.
  await row.$('a').then((a) => a.click());
  await stageIs(page, 'identified', errors);
  assert.match(spaces(await page.textContent('[data-testid="fractures"]')), /fracture de l’extrémité supérieure du fémur/);
  assert.match(spaces(await page.textContent('[data-testid="timeline"]')), /repérage/);
  await shot(page, '2-case-identified');
  await noAccessibilityProblem(page, 'case, identified');
  await page.check('#consent-programme');
  await page.fill('#phone', '+33 6 11 22 33 44');
  await page.selectOption('#physician', doctor.id);
  await page.click('[data-testid="enrol-form"] button[type=submit]');
  await stageIs(page, 'investigating', errors);
  assert.match(await page.textContent('[data-testid="status"]'), /Patient inclus/);
  assert.equal(await page.textContent('[data-testid="phone"]'), '+33 6 11 22 33 44');
  const items = await page.$$eval('[data-testid="panel-row"]', (rows) => rows.map((r) => r.dataset.item));
  assert.ok(items.includes('dxa') && items.includes('vitamin-d') && items.length >= 15, `the panel: ${items}`);
  assert.match(spaces(await page.textContent('[data-testid="consents"]')), /Programme FLS : accepté/);
  await shot(page, '3-case-investigating');

  // The DXA result typed in, every other test waived, the falls assessment recorded.
  await page.click('[data-testid="result-dxa"]');
  await page.fill('[data-testid="panel-row"][data-item="dxa"] input[inputmode="decimal"]', '-2,8');
  await page.click('[data-testid="panel-row"][data-item="dxa"] button[type=submit]');
  await waitFor(page, '[data-testid="panel-row"][data-item="dxa"][data-status="completed"] [data-testid="result"]', errors);
  assert.match(spaces(await page.textContent('[data-testid="panel-row"][data-item="dxa"]')), /-2,8 \{T-score\}/);
  for (const item of items.filter((i) => i !== 'dxa' && i !== 'falls-assessment')) {
    await page.click(`[data-testid="waive-${item}"]`);
    await page.fill(`[data-testid="panel-row"][data-item="${item}"] input[type=text]`, 'fait en ville');
    await page.click(`[data-testid="panel-row"][data-item="${item}"] button[type=submit]`);
    await waitFor(page, `[data-testid="panel-row"][data-item="${item}"][data-status="revoked"]`, errors);
  }
  await page.check('[data-testid="falls-form"] input[value="yes"]');
  await page.click('[data-testid="falls-form"] button[type=submit]');
  await stageIs(page, 'treatment-decision', errors);

  // The decision, with the recommendation beside it (rule and grade).
  await waitFor(page, '[data-testid="recommendation"] li', errors);
  const recommended = spaces(await page.textContent('[data-testid="decide-recommended"]'));
  assert.match(recommended, /Recommandé : .+ \(règle grio-\d, grade /);
  await shot(page, '4-case-decision');
  await noAccessibilityProblem(page, 'case, decision');
  await page.click('[data-testid="decide-form"] button[type=submit]');
  await stageIs(page, 'treating', errors);
  await page.click('[data-testid="started-form"] button[type=submit]');
  await stageIs(page, 'follow-up', errors);
  assert.match(await page.textContent('[data-testid="status"]'), /le suivi est planifié/);
  const schedule = await page.$$eval('[data-testid="schedule-row"]', (rows) => rows.map((r) => r.dataset.kind));
  assert.ok(schedule.some((k) => ['follow-up-call', 'infusion-reminder', 'injection-reminder'].includes(k)), `the schedule: ${schedule}`);
  const events = await page.$$eval('[data-testid="timeline"] li', (li) => li.map((x) => x.dataset.event));
  for (const e of ['identify', 'enrol', 'result', 'waive', 'falls-assessment', 'decide-treatment', 'treatment-started']) {
    assert.ok(events.includes(e), `the timeline has ${e}: ${events}`);
  }
  assert.match(spaces(await page.textContent('[data-testid="timeline"]')), new RegExp(`saisie \\(${nurse.login}\\)`), 'who entered the events');
  await shot(page, '5-case-follow-up');
  await noAccessibilityProblem(page, 'case, follow-up');

  // English, and back.
  await page.click('[data-testid="language"]');
  await waitFor(page, 'html[lang="en"]', errors);
  assert.match(spaces(await page.textContent('[data-testid="stage"]')), /Follow-up/);
  await shot(page, '6-case-english');
  await page.click('[data-testid="language"]');
  await waitFor(page, 'html[lang="fr"]', errors);

  // The day's calls: due later, so none today for this patient; the page still works.
  await page.goto(`${BASE_URL}/app#/day`);
  await waitFor(page, '[data-testid="day"]', errors);
  await noAccessibilityProblem(page, 'the day');
  assert.deepEqual(errors.filter((e) => !expected(e)), [], 'no console error');
  await context.close();
});

test('three unanswered calls on three days raise the "patient unreachable" Task', async () => {
  const c = await fracture(SITE, day(-60));
  await enrol(c, day(-55));
  await waiveAll(c, day(-50));
  await drug(c, 'decide-treatment', day(-45));
  await drug(c, 'treatment-started', day(-40));
  const { page, errors, context } = await newPage(browser);
  await page.goto(`${BASE_URL}/login?next=${encodeURIComponent(`/app#/case/${c.episode}`)}`);
  await signIn(page, nurse);
  await stageIs(page, 'follow-up', errors);
  const unreachable = () => page.$$('[data-testid="schedule-row"][data-kind="unreachable"]');
  for (const [n, when] of [[1, day(-3)], [2, day(-2)], [3, day(-1)]]) {
    assert.equal((await unreachable()).length, 0, `no unreachable Task before call ${n}`);
    await page.check('[data-testid="call-form"] input[name="reached"][value="no"]');
    await page.fill('#call-day', when);
    await page.click('[data-testid="call-form"] button[type=submit]');
    await waitFor(page, `[data-testid="contacts"] [data-testid="contact"]:nth-child(${n})`, errors);
    await waitFor(page, '[data-testid="case"][aria-busy="false"]', errors);
    assert.match(await page.textContent('[data-testid="status"]'), /Appel sans réponse enregistré/);
  }
  await waitFor(page, '[data-testid="schedule-row"][data-kind="unreachable"][data-status="requested"]', errors);
  await shot(page, '7-case-unreachable');
  // The worklist shows it, urgent.
  await page.goto(`${BASE_URL}/app#/`);
  const row = await waitFor(page, `[data-testid="task-row"][data-case="${c.episode}"][data-kind="unreachable"]`, errors);
  assert.match(spaces(await row.textContent()), /Patient injoignable/);
  assert.match(spaces(await row.textContent()), /urgent/);
  // The day's calls: the overdue call of the programme (the unreachable Task is due in a week),
  // with what to ask about an oral bisphosphonate, recorded in one click.
  await page.goto(`${BASE_URL}/app#/day`);
  const call = await waitFor(page, `[data-testid="call"][data-case="${c.episode}"][data-kind="follow-up-call"]`, errors);
  assert.match(spaces(await call.textContent()), /acide alendronique/);
  assert.match(spaces(await call.textContent()), /Comprimé pris à jeun/);
  await shot(page, '8-day');
  await noAccessibilityProblem(page, 'the day, with calls');
  const task = await call.getAttribute('data-task');
  await page.click(`[data-testid="call"][data-task="${task}"] [data-testid="reached-adherent"]`);
  await page.waitForSelector(`[data-testid="call"][data-task="${task}"]`, { state: 'detached', timeout: 15000 });
  const done = await ok('GET', `/Task/${task}`);
  assert.equal(done.status, 'completed', 'the call Task is completed by the one-click outcome');
  assert.deepEqual(errors.filter((e) => !expected(e)), [], 'no console error');
  await context.close();
});

test('two coordinators edit one case: the second is told someone else changed it (412) and sees the fresh state', async () => {
  const c = await fracture(SITE, day(-20));
  await enrol(c, day(-15));
  const a = await newPage(browser);
  const b = await newPage(browser);
  for (const [x, who] of [[a, nurse], [b, colleague]]) {
    await x.page.goto(`${BASE_URL}/login?next=${encodeURIComponent(`/app#/case/${c.episode}`)}`);
    await signIn(x.page, who);
    await stageIs(x.page, 'investigating', x.errors);
  }
  const before = await b.page.getAttribute('[data-testid="case"]', 'data-version');
  // A records the falls assessment; B, still showing the version before it, records exercises.
  await a.page.check('[data-testid="falls-form"] input[value="no"]');
  await a.page.click('[data-testid="falls-form"] button[type=submit]');
  await waitFor(a.page, '[data-testid="timeline"] li[data-event="falls-assessment"]', a.errors);
  await b.page.click('[data-testid="exercise-form"] button[type=submit]');
  const conflict = await waitFor(b.page, '[data-testid="conflict"]', b.errors);
  const text = spaces(await conflict.textContent());
  assert.match(text, /Modifié par quelqu’un d’autre/);
  assert.match(text, new RegExp(`évaluation des chutes, par ${nurse.login}`), text);
  assert.match(text, /Rien n’a été enregistré/);
  // The fresh state: A's event shown, B's not written.
  await waitFor(b.page, '[data-testid="timeline"] li[data-event="falls-assessment"]', b.errors);
  assert.notEqual(await b.page.getAttribute('[data-testid="case"]', 'data-version'), before);
  assert.equal((await b.page.$$('[data-testid="timeline"] li[data-event="exercise-started"]')).length, 0, 'nothing of B was written');
  const log = await ok('GET', `/EpisodeOfCare/${c.episode}/$events`);
  assert.ok(!log.parameter.some((p) => p.part.some((x) => x.name === 'event' && x.valueCode === 'exercise-started')));
  await shot(b.page, '9-conflict');
  await noAccessibilityProblem(b.page, 'the conflict');
  // B, now on the fresh version, records the exercises.
  await b.page.click('[data-testid="exercise-form"] button[type=submit]');
  await waitFor(b.page, '[data-testid="timeline"] li[data-event="exercise-started"]', b.errors);
  assert.deepEqual(a.errors.filter((e) => !expected(e)), [], 'no console error for A');
  assert.deepEqual(b.errors.filter((e) => !expected(e, [412])), [], 'no console error for B but the 412');
  await a.context.close();
  await b.context.close();
});

test('the worklist refreshes without a reload when another coordinator completes a Task', async () => {
  const c = await fracture(SITE, day(-5));
  const name = await nameOf(c);
  const { page, errors, context } = await newPage(browser);
  await page.goto(`${BASE_URL}/login?next=${encodeURIComponent('/app#/')}`);
  await signIn(page, nurse);
  await page.fill('[data-testid="search"]', name.family);
  await waitFor(page, `[data-testid="task-row"][data-case="${c.episode}"][data-kind="assess-enrol"]`, errors);
  // Someone else enrols the patient: the "assess and enrol" Task is completed and the panel's
  // Tasks appear, on this screen, with no reload (it polls every 20 s and on focus).
  await enrol(c, day(-1));
  await page.waitForSelector(`[data-testid="task-row"][data-case="${c.episode}"][data-kind="assess-enrol"]`, { state: 'detached', timeout: 30000 });
  await waitFor(page, `[data-testid="task-row"][data-case="${c.episode}"][data-kind="investigation"]`, errors);
  assert.deepEqual(errors.filter((e) => !expected(e)), [], 'no console error');
  await context.close();
});

test('the worklist and a case reflow on a tablet and at 200% zoom; the skip link comes first; a case opens by keyboard', async () => {
  const c = await fracture(SITE, day(-3));
  for (const viewport of [{ width: 768, height: 1024 }, { width: 683, height: 384 }]) {
    const { page, errors, context } = await newPage(browser, { viewport });
    await page.goto(`${BASE_URL}/login?next=${encodeURIComponent(`/app#/case/${c.episode}`)}`);
    await signIn(page, nurse);
    await stageIs(page, 'identified', errors);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `${viewport.width}x${viewport.height}: the case scrolls sideways by ${overflow} px`);
    await page.goto(`${BASE_URL}/app#/`);
    await waitFor(page, '[data-testid="worklist"][data-refreshed]:not([data-refreshed=""])', errors);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(wide <= 1, `${viewport.width}x${viewport.height}: the worklist scrolls sideways by ${wide} px`);
    await page.reload();
    await waitFor(page, '[data-testid="worklist"][data-refreshed]:not([data-refreshed=""])', errors);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.className), 'skip', 'the first Tab of a page reaches the skip link');
    // By keyboard alone: Tab to the case's link in the worklist, Enter opens the case.
    let reached = false;
    for (let i = 0; i < 60 && !reached; i += 1) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate((id) => document.activeElement?.getAttribute('href') === `#/case/${id}`, c.episode);
    }
    assert.ok(reached, 'the case link is reachable by Tab');
    await page.keyboard.press('Enter');
    await stageIs(page, 'identified', errors);
    await page.screenshot({ path: join(SCREENSHOTS, `app-zoom-${viewport.width}.jpg`), type: 'jpeg', quality: 70 });
    assert.deepEqual(errors.filter((e) => !expected(e)), [], 'no console error');
    await context.close();
  }
});

test('a nurse follows a patient, a colleague is put in charge of another; "my patients" narrows the worklist and the day', async () => {
  const inFollowUp = async () => {
    const c = await fracture(SITE, day(-60));
    await enrol(c, day(-55));
    await waiveAll(c, day(-50));
    await drug(c, 'decide-treatment', day(-45));
    await drug(c, 'treatment-started', day(-40));
    return c;
  };
  const mine = await inFollowUp();
  const hers = await inFollowUp();
  const { page, errors, context } = await newPage(browser);
  await page.goto(`${BASE_URL}/login?next=${encodeURIComponent(`/app#/case/${mine.episode}`)}`);
  await signIn(page, nurse);
  await stageIs(page, 'follow-up', errors);
  assert.match(spaces(await page.textContent('[data-testid="care-manager"] dt')), /Infirmière référente/);
  assert.match(spaces(await page.textContent('[data-testid="care-manager"] dd')), /^Aucune/);
  await page.click('[data-testid="take-case"]');
  await waitFor(page, `[data-testid="care-manager"][data-nurse="Practitioner/${nursePractitioner.id}"]`, errors);
  assert.match(await page.textContent('[data-testid="status"]'), /Vous suivez maintenant ce patient/);
  assert.match(spaces(await page.textContent('[data-testid="care-manager"]')), /Claire BERNARD/);
  const saved = await ok('GET', `/EpisodeOfCare/${mine.episode}`);
  assert.equal(saved.careManager.reference, `Practitioner/${nursePractitioner.id}`, 'a plain FHIR update of the case');
  assert.equal(saved.extension.find((e) => e.url.endsWith('/pathway-stage')).valueCode, 'follow-up', 'the stage unchanged');

  // The other case: the site's nurses (PractitionerRole) to choose from.
  await page.goto(`${BASE_URL}/app#/case/${hers.episode}`);
  await stageIs(page, 'follow-up', errors);
  await page.click('[data-testid="care-manager"] button[aria-expanded]');
  await page.waitForSelector(`[data-testid="nurse-choice"] option[value="Practitioner/${siteNurse.id}"]`, { state: 'attached', timeout: 15000 });
  const choices = await page.$$eval('[data-testid="nurse-choice"] option', (o) => o.map((x) => x.textContent));
  assert.deepEqual(choices, ['Aucune', 'Claire BERNARD (moi)', 'Léa MOREAU']);
  await noAccessibilityProblem(page, 'case, choosing the nurse');
  await page.selectOption('[data-testid="nurse-choice"]', `Practitioner/${siteNurse.id}`);
  await page.click('[data-testid="care-manager"] button[type=submit]');
  await waitFor(page, `[data-testid="care-manager"][data-nurse="Practitioner/${siteNurse.id}"]`, errors);
  assert.match(await page.textContent('[data-testid="status"]'), /Infirmière référente : Léa MOREAU/);
  await shot(page, '10-case-nurse');

  // The worklist: mine, hers, nobody's.
  await page.goto(`${BASE_URL}/app#/`);
  await waitFor(page, '[data-testid="worklist"][data-refreshed]:not([data-refreshed=""])', errors);
  const cases = () => page.$$eval('[data-testid="task-row"]', (rows) => [...new Set(rows.map((r) => r.dataset.case))]);
  const row = (c) => `[data-testid="task-row"][data-case="${c.episode}"]`;
  await waitFor(page, row(mine), errors);
  await waitFor(page, row(hers), errors);
  assert.match(spaces(await page.textContent(row(hers))), /Léa MOREAU/);
  await page.selectOption('[data-testid="nurse"]', 'mine');
  assert.deepEqual(await cases(), [mine.episode], 'my patients only');
  await shot(page, '11-worklist-mine');
  await page.selectOption('[data-testid="nurse"]', `Practitioner/${siteNurse.id}`);
  assert.deepEqual(await cases(), [hers.episode], 'her patients only');
  await page.selectOption('[data-testid="nurse"]', 'none');
  const nobodys = await cases();
  assert.ok(!nobodys.includes(mine.episode) && !nobodys.includes(hers.episode), 'the cases nobody follows yet');
  await noAccessibilityProblem(page, 'worklist, nurse filter');

  // The day's calls: both patients have an overdue call; "my patients" keeps mine.
  await page.goto(`${BASE_URL}/app#/day`);
  await page.selectOption('[data-testid="day-nurse"]', '');
  await waitFor(page, `[data-testid="call"][data-case="${mine.episode}"]`, errors);
  await waitFor(page, `[data-testid="call"][data-case="${hers.episode}"]`, errors);
  await page.selectOption('[data-testid="day-nurse"]', 'mine');
  const called = await page.$$eval('[data-testid="call"]', (li) => [...new Set(li.map((x) => x.dataset.case))]);
  assert.deepEqual(called, [mine.episode], 'my calls only');
  // The choice is kept across a reload.
  await page.reload();
  await waitFor(page, `[data-testid="call"][data-case="${mine.episode}"]`, errors);
  assert.equal(await page.inputValue('[data-testid="day-nurse"]'), 'mine');
  assert.equal((await page.$$(`[data-testid="call"][data-case="${hers.episode}"]`)).length, 0);
  await shot(page, '12-day-mine');
  assert.deepEqual(errors.filter((e) => !expected(e)), [], 'no console error');
  await context.close();
});
