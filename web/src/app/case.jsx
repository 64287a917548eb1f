// A case: the patient, the fractures, the stage and the actions it allows, the investigation
// panel with its results, the recommendation (rule, grade, reasons), the treatment and its
// schedule, contacts and reports, consents, and the event log. Every $event carries If-Match with
// the version shown: a concurrent edit by someone else answers 412, shown as such with the fresh
// state, never overwritten.
import { useEffect, useState } from 'preact/hooks';

import { ApiError, ext, get, parameters, post, put, read, refId, search } from './api.js';
import {
  ErrorNote, OPEN_STAGES, OPEN_TASK, age, dateText, dateTimeText, errorText, label, patientName, today,
} from './common.jsx';

const EXCLUDE_REASONS = ['declined', 'treated-by-specialist', 'not-fragility', 'pathological', 'palliative', 'moved-away', 'other'];
const THEMES = ['adherence', 'recommended-tests', 'tobacco', 'physical-activity', 'falls-nutrition'];
// Drugs offered beside the recommendation (ATC; workflow/data/osteoporosis-drugs.json is the
// server's list: a code it does not know is refused with its words).
const DRUGS = ['M05BA08', 'M05BA04', 'M05BA07', 'M05BA06', 'M05BX04', 'H05AA02', 'M05BX06', 'G03XC01'];
const CALL_TASKS = ['follow-up-call', 'injection-reminder', 'infusion-reminder', 'denosumab-overdue', 'unreachable', 'accompaniment-call', 'relay'];
// The result code a result typed here is sent with, per panel item: the item's order code for the
// labs (the same LOINC code), the T-score for the DXA (workflow/data/investigation-panel.json).
const RESULT_CODE = {
  dxa: { system: 'http://loinc.org', code: '38267-1', unit: '{T-score}' },
};

function itemOf(sr) {
  return (sr.code?.coding || []).find((c) => c.system?.endsWith('/CodeSystem/fls-investigation'))?.code || '';
}
function orderCoding(sr) {
  return (sr.code?.coding || []).find((c) => !c.system?.endsWith('/CodeSystem/fls-investigation'));
}
function forCase(resource, id) {
  return (ext(resource, 'fls-case')?.valueReference?.reference || '') === `EpisodeOfCare/${id}`;
}
// The day an action happened: today's date means now (the exact instant); an earlier day is sent
// as a FHIR date (the day is what the pathway and the indicators count).
function occurred(day) {
  return day && day !== today() ? day : undefined;
}
function partsOf(p) {
  const out = {};
  for (const x of p.part || []) out[x.name] = x[Object.keys(x).find((k) => k.startsWith('value'))];
  return out;
}

async function loadCase(id) {
  const ep = await read(`/EpisodeOfCare/${encodeURIComponent(id)}`);
  const episode = ep.body;
  const pid = refId(episode.patient);
  const p = `Patient/${encodeURIComponent(pid)}`;
  const stage = ext(episode, 'pathway-stage')?.valueCode || '';
  const practitionerIds = ['referring-physician', 'general-practitioner'].map((n) => refId(ext(episode, n)?.valueReference)).filter(Boolean);
  const conditionIds = (episode.diagnosis || []).map((d) => refId(d.condition)).filter(Boolean);
  const wantRecommendation = ['treatment-decision', 'treating', 'follow-up'].includes(stage);
  const [patient, events, conditions, requests, observations, tasks, panelTasks, consents, comms, plans, practitioners, recommendation] =
    await Promise.all([
      get(`/${p}`),
      get(`/EpisodeOfCare/${encodeURIComponent(id)}/$events`),
      conditionIds.length ? search(`/Condition?_id=${conditionIds.join(',')}`, 1) : [],
      search(`/ServiceRequest?patient=${p}&_count=200`, 2),
      search(`/Observation?patient=${p}&_count=200`, 2),
      search(`/Task?focus=EpisodeOfCare/${encodeURIComponent(id)}&_sort=due&_count=200`, 2),
      search(`/Task?patient=${p}&status=${OPEN_TASK}&_count=200`, 2),
      search(`/Consent?patient=${p}`, 1),
      search(`/Communication?patient=${p}&_count=200`, 2),
      search(`/CarePlan?patient=${p}`, 1),
      practitionerIds.length ? search(`/Practitioner?_id=${practitionerIds.join(',')}`, 1) : [],
      wantRecommendation ? get(`/EpisodeOfCare/${encodeURIComponent(id)}/$recommend`).catch(() => null) : null,
    ]);
  return {
    episode, etag: ep.etag, stage, patient, events: (events?.parameter || []).map(partsOf), conditions,
    requests: requests.filter((sr) => forCase(sr, id) || (sr.supportingInfo || []).some((s) => s.reference === `EpisodeOfCare/${id}`)),
    observations, tasks, panelTasks, consents: consents.filter((c) => !ext(c, 'fls-case') || forCase(c, id)),
    comms: comms.filter((c) => (c.about || []).some((a) => a.reference === `EpisodeOfCare/${id}`) || forCase(c, id)),
    plans, practitioners: new Map(practitioners.map((x) => [x.id, x])), recommendation,
  };
}

function practitionerName(x) {
  return patientName(x) || x?.id || '';
}

function Field({ id, text, children, hint }) {
  return (
    <div class="field">
      <label for={id}>{text}</label>
      {children}
      {hint && <p class="hint" id={`${id}-hint`}>{hint}</p>}
    </div>
  );
}

function DateField({ t, id, value, onInput }) {
  return (
    <Field id={id} text={t('act.when')}>
      <input id={id} type="date" value={value} max={today()} required onInput={(e) => onInput(e.currentTarget.value)} />
    </Field>
  );
}

// ---- The actions, by stage ----

function EnrolForm({ t, data, act }) {
  const telecom = (data.patient.telecom || []).find((x) => x.system === 'phone')?.value || '';
  const [v, setV] = useState({ programme: false, report: 'yes', phone: telecom, physician: '', gp: '', day: today() });
  const [physicians, setPhysicians] = useState([]);
  useEffect(() => { search('/Practitioner?_count=200', 2).then(setPhysicians).catch(() => setPhysicians([])); }, []);
  const set = (k) => (e) => setV({ ...v, [k]: e.currentTarget.type === 'checkbox' ? e.currentTarget.checked : e.currentTarget.value });
  return (
    <form class="action" data-testid="enrol-form" onSubmit={(e) => {
      e.preventDefault();
      act(parameters([
        ['event', 'valueCode', 'enrol'], ['consent-programme', 'valueBoolean', v.programme],
        ['consent-report', 'valueBoolean', v.report === 'yes'], ['phone', 'valueString', v.phone],
        ['referring-physician', 'valueReference', v.physician ? { reference: `Practitioner/${v.physician}` } : undefined],
        ['gp', 'valueReference', v.gp ? { reference: `Practitioner/${v.gp}` } : undefined],
        ['occurred', 'valueDateTime', occurred(v.day)],
      ]), t('act.done.enrol'));
    }}>
      <h4>{t('act.enrol')}</h4>
      <div class="check">
        <input id="consent-programme" type="checkbox" checked={v.programme} onChange={set('programme')} required />
        <label for="consent-programme">{t('act.consentProgramme')}</label>
      </div>
      <fieldset class="inline">
        <legend>{t('act.consentReport')}</legend>
        <label><input type="radio" name="report" value="yes" checked={v.report === 'yes'} onChange={set('report')} /> {t('coord.yes')}</label>
        <label><input type="radio" name="report" value="no" checked={v.report === 'no'} onChange={set('report')} /> {t('coord.no')}</label>
      </fieldset>
      <Field id="phone" text={t('act.phone')}><input id="phone" type="tel" required value={v.phone} onInput={set('phone')} autocomplete="off" /></Field>
      <Field id="physician" text={t('act.referringPhysician')}>
        <select id="physician" required value={v.physician} onChange={set('physician')}>
          <option value="">{t('act.choose')}</option>
          {physicians.map((x) => <option key={x.id} value={x.id}>{practitionerName(x)}</option>)}
        </select>
      </Field>
      <Field id="gp" text={t('act.gp')}>
        <select id="gp" value={v.gp} onChange={set('gp')}>
          <option value="">{t('act.none')}</option>
          {physicians.map((x) => <option key={x.id} value={x.id}>{practitionerName(x)}</option>)}
        </select>
      </Field>
      <DateField t={t} id="enrol-day" value={v.day} onInput={(d) => setV({ ...v, day: d })} />
      <button type="submit">{t('act.enrolSubmit')}</button>
      <p class="hint">{t('act.declineHint')}</p>
    </form>
  );
}

function ReasonForm({ t, event, title, submit, reasons, act, done, testid }) {
  const [reason, setReason] = useState(reasons ? reasons[0] : '');
  const [day, setDay] = useState(today());
  const id = `${event}-reason`;
  return (
    <form class="action" data-testid={testid} onSubmit={(e) => {
      e.preventDefault();
      act(parameters([['event', 'valueCode', event], [reasons ? 'reason' : 'reason', reasons ? 'valueCode' : 'valueString', reason],
        ['occurred', 'valueDateTime', occurred(day)]]), done);
    }}>
      <h4>{title}</h4>
      <Field id={id} text={t('act.reason')}>
        {reasons
          ? <select id={id} value={reason} onChange={(e) => setReason(e.currentTarget.value)}>
              {reasons.map((r) => <option key={r} value={r}>{label(t, 'reason', r)}</option>)}
            </select>
          : <input id={id} type="text" required value={reason} onInput={(e) => setReason(e.currentTarget.value)} />}
      </Field>
      <DateField t={t} id={`${event}-day`} value={day} onInput={setDay} />
      <button type="submit">{submit}</button>
    </form>
  );
}

function FallsForm({ t, act }) {
  const [risk, setRisk] = useState('no');
  const [day, setDay] = useState(today());
  return (
    <form class="action" data-testid="falls-form" onSubmit={(e) => {
      e.preventDefault();
      act(parameters([['event', 'valueCode', 'falls-assessment'], ['at-risk', 'valueBoolean', risk === 'yes'],
        ['occurred', 'valueDateTime', occurred(day)]]), t('act.done.falls'));
    }}>
      <h4>{t('act.falls')}</h4>
      <fieldset class="inline">
        <legend>{t('act.atRisk')}</legend>
        <label><input type="radio" name="at-risk" value="yes" checked={risk === 'yes'} onChange={() => setRisk('yes')} /> {t('coord.yes')}</label>
        <label><input type="radio" name="at-risk" value="no" checked={risk === 'no'} onChange={() => setRisk('no')} /> {t('coord.no')}</label>
      </fieldset>
      <DateField t={t} id="falls-day" value={day} onInput={setDay} />
      <button type="submit">{t('act.record')}</button>
    </form>
  );
}

function DecideForm({ t, lang, data, act }) {
  const recs = (data.recommendation?.parameter || []).filter((p) => p.name === 'recommendation').map(partsOf);
  const first = recs.find((r) => r.status === 'recommended');
  const firstCode = first?.drug?.coding?.[0]?.code || '';
  const [drug, setDrug] = useState(firstCode || DRUGS[0]);
  const [day, setDay] = useState(today());
  const codes = [...new Set([firstCode, ...recs.map((r) => r.drug?.coding?.[0]?.code), ...DRUGS].filter(Boolean))];
  return (
    <form class="action" data-testid="decide-form" onSubmit={(e) => {
      e.preventDefault();
      act(parameters([['event', 'valueCode', 'decide-treatment'],
        ['drug', 'valueCodeableConcept', { coding: [{ system: 'http://www.whocc.no/atc', code: drug }] }],
        ['occurred', 'valueDateTime', occurred(day)]]), t('act.done.decide'));
    }}>
      <h4>{t('act.decide')}</h4>
      {first && <p data-testid="decide-recommended">{t('act.recommended', { drug: label(t, 'drug', firstCode, first.drug?.coding?.[0]?.display), rule: first.rule, grade: first.grade })}</p>}
      <Field id="drug" text={t('act.drug')}>
        <select id="drug" value={drug} onChange={(e) => setDrug(e.currentTarget.value)}>
          {codes.map((c) => <option key={c} value={c}>{label(t, 'drug', c)}{c === firstCode ? ` — ${t('act.asRecommended')}` : ''}</option>)}
        </select>
      </Field>
      <DateField t={t} id="decide-day" value={day} onInput={setDay} />
      <button type="submit">{t('act.decideSubmit')}</button>
      {drug !== firstCode && firstCode && <p class="notice">{t('act.departs')}</p>}
    </form>
  );
}

function StartedForm({ t, act }) {
  const [day, setDay] = useState(today());
  return (
    <form class="action" data-testid="started-form" onSubmit={(e) => {
      e.preventDefault();
      act(parameters([['event', 'valueCode', 'treatment-started'], ['occurred', 'valueDateTime', occurred(day)]]), t('act.done.started'));
    }}>
      <h4>{t('act.started')}</h4>
      <DateField t={t} id="started-day" value={day} onInput={setDay} />
      <button type="submit">{t('act.startedSubmit')}</button>
    </form>
  );
}

function SimpleEvent({ t, event, title, submit, act, done, testid }) {
  const [day, setDay] = useState(today());
  return (
    <form class="action" data-testid={testid} onSubmit={(e) => {
      e.preventDefault();
      act(parameters([['event', 'valueCode', event], ['occurred', 'valueDateTime', occurred(day)]]), done);
    }}>
      <h4>{title}</h4>
      <DateField t={t} id={`${event}-day`} value={day} onInput={setDay} />
      <button type="submit">{submit}</button>
    </form>
  );
}

function CallForm({ t, lang, data, contact }) {
  const open = data.tasks.filter((tk) => CALL_TASKS.includes(tk.code?.coding?.[0]?.code) && OPEN_TASK.split(',').includes(tk.status));
  const [v, setV] = useState({ task: open[0]?.id || '', reached: 'yes', adherent: 'yes', side: '', note: '', day: today() });
  const set = (k) => (e) => setV({ ...v, [k]: e.currentTarget.value });
  return (
    <form class="action" data-testid="call-form" onSubmit={(e) => {
      e.preventDefault();
      const reached = v.reached === 'yes';
      const task = open.find((tk) => tk.id === v.task);
      // If-Match: the version of the call's Task as shown (two nurses recording one call: the
      // second is told), or of the case when no Task is chosen.
      const ifMatch = task?.meta?.versionId ? `W/"${task.meta.versionId}"` : data.etag;
      contact(ifMatch, parameters([
        ['reached', 'valueBoolean', reached],
        ['occurred', 'valueDateTime', occurred(v.day)],
        ['task', 'valueReference', v.task ? { reference: `Task/${v.task}` } : undefined],
        ['adherent', 'valueBoolean', reached && v.adherent !== 'unknown' ? v.adherent === 'yes' : undefined],
        ['side-effect', 'valueString', reached ? v.side.trim() : undefined],
        ['note', 'valueString', v.note.trim()],
      ]), reached ? t('act.done.callReached') : t('act.done.callNotReached'));
    }}>
      <h4>{t('act.call')}</h4>
      <Field id="call-task" text={t('act.callTask')}>
        <select id="call-task" value={v.task} onChange={set('task')}>
          <option value="">{t('act.noTask')}</option>
          {open.map((tk) => <option key={tk.id} value={tk.id}>{label(t, 'task', tk.code?.coding?.[0]?.code, tk.code?.coding?.[0]?.display)} — {dateText(lang, tk.restriction?.period?.end)}</option>)}
        </select>
      </Field>
      <fieldset class="inline">
        <legend>{t('act.reached')}</legend>
        <label><input type="radio" name="reached" value="yes" checked={v.reached === 'yes'} onChange={set('reached')} /> {t('coord.yes')}</label>
        <label><input type="radio" name="reached" value="no" checked={v.reached === 'no'} onChange={set('reached')} /> {t('coord.no')}</label>
      </fieldset>
      {v.reached === 'yes' && (
        <>
          <fieldset class="inline">
            <legend>{t('act.adherent')}</legend>
            <label><input type="radio" name="adherent" value="yes" checked={v.adherent === 'yes'} onChange={set('adherent')} /> {t('coord.yes')}</label>
            <label><input type="radio" name="adherent" value="no" checked={v.adherent === 'no'} onChange={set('adherent')} /> {t('coord.no')}</label>
            <label><input type="radio" name="adherent" value="unknown" checked={v.adherent === 'unknown'} onChange={set('adherent')} /> {t('act.notAsked')}</label>
          </fieldset>
          <Field id="side-effect" text={t('act.sideEffect')}><input id="side-effect" type="text" value={v.side} onInput={set('side')} /></Field>
        </>
      )}
      <Field id="call-note" text={t('act.note')}><input id="call-note" type="text" value={v.note} onInput={set('note')} /></Field>
      <DateField t={t} id="call-day" value={v.day} onInput={(d) => setV({ ...v, day: d })} />
      <button type="submit">{t('act.recordCall')}</button>
    </form>
  );
}

function AccompanyForm({ t, accompany }) {
  const [theme, setTheme] = useState(THEMES[0]);
  const [requester, setRequester] = useState('');
  const [physicians, setPhysicians] = useState([]);
  useEffect(() => { search('/Practitioner?_count=200', 2).then(setPhysicians).catch(() => setPhysicians([])); }, []);
  return (
    <form class="action" data-testid="accompany-form" onSubmit={(e) => {
      e.preventDefault();
      accompany(parameters([['theme', 'valueCode', theme], ['requester', 'valueReference', { reference: `Practitioner/${requester}` }]]), t('act.done.accompany'));
    }}>
      <h4>{t('act.accompany')}</h4>
      <Field id="theme" text={t('act.theme')}>
        <select id="theme" value={theme} onChange={(e) => setTheme(e.currentTarget.value)}>
          {THEMES.map((x) => <option key={x} value={x}>{label(t, 'theme', x)}</option>)}
        </select>
      </Field>
      <Field id="requester" text={t('act.requester')}>
        <select id="requester" required value={requester} onChange={(e) => setRequester(e.currentTarget.value)}>
          <option value="">{t('act.choose')}</option>
          {physicians.map((x) => <option key={x.id} value={x.id}>{practitionerName(x)}</option>)}
        </select>
      </Field>
      <button type="submit">{t('act.accompanySubmit')}</button>
    </form>
  );
}

function Actions({ t, lang, data, act, contact, accompany }) {
  const s = data.stage;
  if (!OPEN_STAGES.includes(s)) return <p data-testid="closed">{t('act.closed')}</p>;
  return (
    <div class="actions" data-testid="actions">
      {s === 'identified' && <EnrolForm t={t} data={data} act={act} />}
      {s === 'identified' && <ReasonForm t={t} event="exclude" title={t('act.exclude')} submit={t('act.excludeSubmit')} reasons={EXCLUDE_REASONS} act={act} done={t('act.done.exclude')} testid="exclude-form" />}
      {['investigating', 'treatment-decision', 'treating', 'follow-up'].includes(s) && <FallsForm t={t} act={act} />}
      {s === 'treatment-decision' && <DecideForm t={t} lang={lang} data={data} act={act} />}
      {s === 'treatment-decision' && <ReasonForm t={t} event="decide-no-treatment" title={t('act.noTreatment')} submit={t('act.noTreatmentSubmit')} act={act} done={t('act.done.noTreatment')} testid="no-treatment-form" />}
      {s === 'treating' && <StartedForm t={t} act={act} />}
      {s === 'follow-up' && <CallForm t={t} lang={lang} data={data} contact={contact} />}
      {s === 'follow-up' && <AccompanyForm t={t} accompany={accompany} />}
      {['investigating', 'treatment-decision', 'treating', 'follow-up'].includes(s) && <SimpleEvent t={t} event="exercise-started" title={t('act.exercise')} submit={t('act.record')} act={act} done={t('act.done.exercise')} testid="exercise-form" />}
      <ReasonForm t={t} event="withdraw" title={t('act.withdraw')} submit={t('act.withdrawSubmit')} act={act} done={t('act.done.withdraw')} testid="withdraw-form" />
    </div>
  );
}

// ---- The panel: each item, its status, its results; record a result or waive it ----

function ItemActions({ t, sr, item, act, postResult }) {
  const [mode, setMode] = useState('');
  const [value, setValue] = useState('');
  const [unit, setUnit] = useState(RESULT_CODE[item]?.unit || '');
  const [reason, setReason] = useState('');
  const [day, setDay] = useState(today());
  if (sr.status !== 'active') return null;
  if (item === 'falls-assessment') return <span class="muted">{t('panel.byFallsForm')}</span>;
  const id = `${item}-${sr.id}`;
  return (
    <div class="item-actions">
      {mode === '' && (
        <>
          <button type="button" class="small" data-testid={`result-${item}`} onClick={() => setMode('result')}
            aria-label={t('panel.recordResultFor', { item: label(t, 'item', item) })}>{t('panel.recordResult')}</button>
          <button type="button" class="small secondary" data-testid={`waive-${item}`} onClick={() => setMode('waive')}
            aria-label={t('panel.waiveFor', { item: label(t, 'item', item) })}>{t('panel.waive')}</button>
        </>
      )}
      {mode === 'result' && (
        <form class="inline-form" onSubmit={(e) => {
          e.preventDefault();
          const coding = RESULT_CODE[item] || orderCoding(sr);
          const number = Number(value.replace(',', '.'));
          postResult({
            resourceType: 'Observation', status: 'final',
            code: { coding: [{ system: coding.system, code: coding.code }] },
            subject: sr.subject, basedOn: [{ reference: `ServiceRequest/${sr.id}` }],
            effectiveDateTime: day,
            valueQuantity: { value: number, unit, system: 'http://unitsofmeasure.org', code: unit },
          }, t('panel.done.result'));
        }}>
          <Field id={`${id}-value`} text={t('panel.value')}><input id={`${id}-value`} type="text" inputmode="decimal" required pattern="-?[0-9]+([.,][0-9]+)?" value={value} onInput={(e) => setValue(e.currentTarget.value)} /></Field>
          <Field id={`${id}-unit`} text={t('panel.unit')}><input id={`${id}-unit`} type="text" required value={unit} onInput={(e) => setUnit(e.currentTarget.value)} /></Field>
          <Field id={`${id}-day`} text={t('panel.date')}><input id={`${id}-day`} type="date" required max={today()} value={day} onInput={(e) => setDay(e.currentTarget.value)} /></Field>
          <button type="submit">{t('act.record')}</button>
          <button type="button" class="link" onClick={() => setMode('')}>{t('coord.cancel')}</button>
        </form>
      )}
      {mode === 'waive' && (
        <form class="inline-form" onSubmit={(e) => {
          e.preventDefault();
          act(parameters([['event', 'valueCode', 'waive'], ['item', 'valueReference', { reference: `ServiceRequest/${sr.id}` }],
            ['reason', 'valueString', reason], ['occurred', 'valueDateTime', occurred(day)]]), t('panel.done.waive'));
        }}>
          <Field id={`${id}-reason`} text={t('panel.waiveReason')}><input id={`${id}-reason`} type="text" required value={reason} onInput={(e) => setReason(e.currentTarget.value)} /></Field>
          <Field id={`${id}-wday`} text={t('panel.date')}><input id={`${id}-wday`} type="date" required max={today()} value={day} onInput={(e) => setDay(e.currentTarget.value)} /></Field>
          <button type="submit">{t('panel.waiveSubmit')}</button>
          <button type="button" class="link" onClick={() => setMode('')}>{t('coord.cancel')}</button>
        </form>
      )}
    </div>
  );
}

function Panel({ t, lang, data, act, postResult }) {
  if (data.requests.length === 0) return null;
  const results = (sr) => data.observations.filter((o) => (o.basedOn || []).some((b) => b.reference === `ServiceRequest/${sr.id}`));
  return (
    <section aria-labelledby="panel-title" data-testid="panel">
      <h3 id="panel-title">{t('panel.title')}</h3>
      <div class="scroll" tabIndex={0} role="region" aria-label={t('panel.title')}>
        <table>
          <thead><tr><th scope="col">{t('panel.item')}</th><th scope="col">{t('panel.status')}</th><th scope="col">{t('panel.result')}</th><th scope="col">{t('panel.action')}</th></tr></thead>
          <tbody>
            {data.requests.map((sr) => {
              const item = itemOf(sr);
              return (
                <tr key={sr.id} data-testid="panel-row" data-item={item} data-status={sr.status}>
                  <th scope="row">{label(t, 'item', item, sr.code?.text)}</th>
                  <td>{label(t, 'itemStatus', sr.status)}{sr.status === 'revoked' && sr.note?.[0]?.text ? ` — ${sr.note[0].text.replace(/^Waived:\s*/, '')}` : ''}</td>
                  <td>{results(sr).map((o) => (
                    <div key={o.id} data-testid="result">
                      {o.valueQuantity ? `${String(o.valueQuantity.value).replace('.', lang === 'fr' ? ',' : '.')} ${o.valueQuantity.unit || o.valueQuantity.code || ''}` : o.valueBoolean !== undefined ? (o.valueBoolean ? t('coord.yes') : t('coord.no')) : o.valueString || ''}
                      {(o.interpretation || []).map((i) => <span key={i.coding?.[0]?.code} class="badge">{i.coding?.[0]?.code}</span>)}
                      <span class="muted"> · {dateText(lang, o.effectiveDateTime)}</span>
                    </div>
                  ))}</td>
                  <td><ItemActions t={t} sr={sr} item={item} act={act} postResult={postResult} /></td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function Recommendation({ t, data }) {
  const params = data.recommendation?.parameter || [];
  const recs = params.filter((p) => p.name === 'recommendation').map(partsOf);
  if (!data.recommendation) return null;
  const missing = params.filter((p) => p.name === 'missing').map((p) => p.valueString);
  const prereq = params.filter((p) => p.name === 'prerequisite').map(partsOf);
  return (
    <section aria-labelledby="rec-title" data-testid="recommendation">
      <h3 id="rec-title">{t('rec.title')}</h3>
      {recs.length === 0 && <p>{t('rec.none')}</p>}
      <ol>
        {recs.map((r, i) => (
          <li key={i} data-status={r.status}>
            <strong>{label(t, 'drug', r.drug?.coding?.[0]?.code, r.drug?.coding?.[0]?.display)}</strong>
            {' — '}{label(t, 'recStatus', r.status)} · {t('rec.rule', { rule: r.rule || '', grade: r.grade || '' })}
            {r.reason && <div class="muted" lang="en">{r.reason}</div>}
          </li>
        ))}
      </ol>
      {prereq.length > 0 && <p>{t('rec.prerequisites')} {prereq.map((p) => label(t, 'prereq', p.code, p.text)).join(' ; ')}</p>}
      {missing.length > 0 && <p class="notice">{t('rec.missing')} <span lang="en">{missing.join(' ; ')}</span></p>}
    </section>
  );
}

function Treatment({ t, lang, data }) {
  const activities = data.plans.flatMap((p) => (p.activity || []).map((a) => ({ plan: p, detail: a.detail || {} })))
    .filter((a) => a.detail.kind === 'MedicationRequest');
  const schedule = data.tasks;
  return (
    <section aria-labelledby="treatment-title" data-testid="treatment">
      <h3 id="treatment-title">{t('treat.title')}</h3>
      {activities.length === 0 && <p>{t('treat.none')}</p>}
      <ul>
        {activities.map((a, i) => (
          <li key={i}>{label(t, 'drug', a.detail.code?.coding?.[0]?.code, a.detail.code?.coding?.[0]?.display)} — {label(t, 'activity', a.detail.status)}</li>
        ))}
      </ul>
      <h4>{t('treat.schedule')}</h4>
      <div class="scroll" tabIndex={0} role="region" aria-label={t('treat.schedule')}>
        <table data-testid="schedule">
          <thead><tr><th scope="col">{t('coord.due')}</th><th scope="col">{t('coord.task')}</th><th scope="col">{t('panel.status')}</th></tr></thead>
          <tbody>
            {schedule.map((tk) => (
              <tr key={tk.id} data-testid="schedule-row" data-kind={tk.code?.coding?.[0]?.code} data-status={tk.status}>
                <td>{dateText(lang, tk.restriction?.period?.end)}</td>
                <td>{label(t, 'task', tk.code?.coding?.[0]?.code, tk.code?.coding?.[0]?.display)}</td>
                <td>{label(t, 'taskStatus', tk.status)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function Contacts({ t, lang, data }) {
  return (
    <section aria-labelledby="contacts-title" data-testid="contacts">
      <h3 id="contacts-title">{t('contacts.title')}</h3>
      {data.comms.length === 0 && <p>{t('contacts.none')}</p>}
      <ul>
        {data.comms.map((c) => (
          <li key={c.id} data-testid="contact" data-category={c.category?.[0]?.coding?.[0]?.code}>
            <strong>{label(t, 'comm', c.category?.[0]?.coding?.[0]?.code)}</strong> · {dateTimeText(lang, c.sent || c.received)}
            <div class="muted" lang="en">{(c.payload || []).map((p) => p.contentString).filter(Boolean).slice(0, 4).join(' · ')}</div>
          </li>
        ))}
      </ul>
      <h4>{t('consent.title')}</h4>
      <ul data-testid="consents">
        {data.consents.map((c) => {
          const code = c.policyRule?.coding?.[0]?.code;
          return <li key={c.id} data-consent={code}>{label(t, 'consent', code)} : {c.provision?.type === 'permit' ? t('consent.permit') : t('consent.deny')} ({label(t, 'consentStatus', c.status)})</li>;
        })}
      </ul>
    </section>
  );
}

function Timeline({ t, lang, data }) {
  return (
    <section aria-labelledby="timeline-title" data-testid="timeline">
      <h3 id="timeline-title">{t('timeline.title')}</h3>
      <ol class="timeline">
        {[...data.events].reverse().map((e) => (
          <li key={e.seq} data-event={e.event}>
            <span class="when">{dateTimeText(lang, e.occurred)}</span>{' '}
            <strong>{label(t, 'event', e.event)}</strong>
            {e.to && <> · {label(t, 'stage', e.to)}</>}
            <span class="muted"> · {label(t, 'source', e.source)}{e.actor ? ` (${e.actor})` : ''}</span>
            {(e.reason || e.note) && <div class="muted">{[e.reason, e.note].filter(Boolean).join(' — ')}</div>}
          </li>
        ))}
      </ol>
    </section>
  );
}

// The nurse in charge of the case (EpisodeOfCare.careManager): shown, and set by a PUT of the
// case with If-Match (a plain FHIR update; status and stage unchanged, which the server allows).
// The choices: the signed-in person's Practitioner (their fhirUser) and the Practitioners with a
// PractitionerRole at the case's site.
function CareManager({ t, data, session, save }) {
  const current = data.episode.careManager?.reference || '';
  const [nurses, setNurses] = useState(null);
  const [chosen, setChosen] = useState(current);
  const [open, setOpen] = useState(false);
  const me = session?.fhirUser || '';
  useEffect(() => { setChosen(current); }, [current]);
  const choose = async () => {
    setOpen(true);
    if (nurses) return;
    const site = data.episode.managingOrganization?.reference || '';
    const found = site ? await search(`/PractitionerRole?organization=${encodeURIComponent(site)}&_include=PractitionerRole:practitioner&_count=200`, 2).catch(() => []) : [];
    const active = new Set(found.filter((r) => r.resourceType === 'PractitionerRole' && r.active !== false).map((r) => r.practitioner?.reference));
    const people = new Map(found.filter((r) => r.resourceType === 'Practitioner' && active.has(`Practitioner/${r.id}`)).map((x) => [`Practitioner/${x.id}`, x]));
    if (me && !people.has(me)) {
      const mine = await get(`/${me}`).catch(() => null);
      if (mine) people.set(me, mine);
    }
    setNurses([...people.entries()].sort((a, b) => practitionerName(a[1]).localeCompare(practitionerName(b[1]))));
  };
  const assign = (ref) => {
    const who = ref ? (nurses || []).find(([r]) => r === ref)?.[1] : null;
    const episode = { ...data.episode };
    if (ref) episode.careManager = { reference: ref, display: practitionerName(who) || undefined };
    else delete episode.careManager;
    save(episode, ref ? t('nurse.done.assigned', { who: practitionerName(who) || ref }) : t('nurse.done.released'));
    setOpen(false);
  };
  const name = data.episode.careManager?.display || current.replace(/^Practitioner\//, '');
  return (
    <div data-testid="care-manager" data-nurse={current}>
      <dt>{t('nurse.label')}</dt>
      <dd>
        {current ? name : t('nurse.none')}
        {me && current !== me && <> <button type="button" class="link" data-testid="take-case" onClick={async () => {
          const mine = await get(`/${me}`).catch(() => null);
          const episode = { ...data.episode, careManager: { reference: me, display: practitionerName(mine) || undefined } };
          save(episode, t('nurse.done.taken'));
        }}>{t('nurse.take')}</button></>}
        {' '}<button type="button" class="link" aria-expanded={open ? 'true' : 'false'} onClick={() => (open ? setOpen(false) : choose())}>{t('nurse.change')}</button>
        {open && (
          <form class="inline-form" onSubmit={(e) => { e.preventDefault(); assign(chosen); }}>
            <Field id="nurse-choice" text={t('nurse.choose')}>
              <select id="nurse-choice" value={chosen} onChange={(e) => setChosen(e.currentTarget.value)} data-testid="nurse-choice">
                <option value="">{t('nurse.none')}</option>
                {(nurses || []).map(([ref, x]) => <option key={ref} value={ref}>{practitionerName(x)}{ref === me ? ` (${t('nurse.me')})` : ''}</option>)}
              </select>
            </Field>
            {nurses && nurses.length === 0 && !me && <p class="hint">{t('nurse.noneAtSite')}</p>}
            <button type="submit">{t('nurse.save')}</button>
            <button type="button" class="link" onClick={() => setOpen(false)}>{t('coord.cancel')}</button>
          </form>
        )}
      </dd>
    </div>
  );
}

export function CaseView({ t, lang, session, id }) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [conflict, setConflict] = useState(false);
  const [done, setDone] = useState('');
  const [busy, setBusy] = useState(false);

  const load = () => loadCase(id).then((d) => { setData(d); setError(null); }).catch(setError);
  useEffect(() => { load(); }, [id]);

  // Posts and shows the fresh case; a stale version (412) reloads it and says so.
  const run = async (doIt, message) => {
    setBusy(true);
    setDone('');
    setConflict(false);
    setError(null);
    try {
      await doIt();
      setDone(message);
      await load();
    } catch (e) {
      if (e instanceof ApiError && e.status === 412) {
        // The fresh state first, then the notice that names what changed it.
        const fresh = await loadCase(id).catch(() => null);
        if (fresh) setData(fresh);
        setConflict(true);
      } else {
        setError(e);
      }
    } finally {
      setBusy(false);
    }
  };
  const act = (body, message) => run(() => post(`/EpisodeOfCare/${encodeURIComponent(id)}/$event`, body, { ifMatch: data.etag }), message);
  const contact = (ifMatch, body, message) => run(() => post(`/EpisodeOfCare/${encodeURIComponent(id)}/$contact`, body, { ifMatch }), message);
  const accompany = (body, message) => run(() => post(`/EpisodeOfCare/${encodeURIComponent(id)}/$accompany`, body, { ifMatch: data.etag }), message);
  const saveEpisode = (episode, message) => run(() => put(`/EpisodeOfCare/${encodeURIComponent(id)}`, episode, { ifMatch: data.etag }), message);
  const postResult = (observation, message) => run(() => post('/Observation', observation), message);

  if (!data) {
    return error ? <ErrorNote t={t} error={error} /> : <p class="loading" role="status">{t('app.loading')}</p>;
  }
  const p = data.patient;
  const phone = ext(data.episode, 'contact-phone')?.valueString || (p.telecom || []).find((x) => x.system === 'phone')?.value || '';
  const physician = data.practitioners.get(refId(ext(data.episode, 'referring-physician')?.valueReference));
  const gp = data.practitioners.get(refId(ext(data.episode, 'general-practitioner')?.valueReference));
  const last = data.events[data.events.length - 1];
  return (
    <div class="case" data-testid="case" data-stage={data.stage} data-version={data.episode.meta?.versionId} aria-busy={busy ? 'true' : 'false'}>
      <p><a href="#/">{t('case.back')}</a></p>
      <section aria-labelledby="patient-title" data-testid="patient">
        <h2 id="patient-title">{patientName(p)}</h2>
        <dl class="facts">
          <div><dt>{t('case.age')}</dt><dd>{t('coord.age', { years: age(p.birthDate) ?? '?' })} ({dateText(lang, p.birthDate)})</dd></div>
          <div><dt>{t('case.phone')}</dt><dd data-testid="phone">{phone || t('case.unknown')}</dd></div>
          <div><dt>{t('case.physician')}</dt><dd>{physician ? practitionerName(physician) : t('case.unknown')}</dd></div>
          <div><dt>{t('case.gp')}</dt><dd>{gp ? practitionerName(gp) : t('case.unknown')}</dd></div>
          <div><dt>{t('case.stage')}</dt><dd><span class={`stage stage-${data.stage}`} data-testid="stage">{label(t, 'stage', data.stage)}</span></dd></div>
          <div><dt>{t('case.site')}</dt><dd>{refId(data.episode.managingOrganization)}</dd></div>
          <CareManager t={t} data={data} session={session} save={saveEpisode} />
        </dl>
        <h3>{t('case.fractures')}</h3>
        <ul data-testid="fractures">
          {(data.episode.diagnosis || []).map((d) => {
            const c = data.conditions.find((x) => x.id === refId(d.condition));
            const site = (d.extension || []).find((x) => x.url.endsWith('/fracture-site'))?.valueCode;
            const role = d.role?.coding?.[0]?.code;
            return <li key={d.condition?.reference}>{label(t, 'dxrole', role)} : {label(t, 'site', site, c?.code?.text || c?.code?.coding?.[0]?.display)} — {dateText(lang, c?.onsetDateTime)}</li>;
          })}
        </ul>
      </section>
      <div class="live" role="status" aria-live="polite" data-testid="status">{busy ? t('app.loading') : done}</div>
      {conflict && (
        <div class="conflict" role="alert" data-testid="conflict">
          <h3>{t('case.conflictTitle')}</h3>
          <p>{t('case.conflict', { event: last ? label(t, 'event', last.event) : '', who: last?.actor || t('case.someone') })}</p>
        </div>
      )}
      {error && <div class="error" role="alert" data-testid="action-error"><p>{errorText(t, error)}</p></div>}
      <section aria-labelledby="actions-title">
        <h3 id="actions-title">{t('act.title')}</h3>
        <Actions t={t} lang={lang} data={data} act={act} contact={contact} accompany={accompany} />
      </section>
      <Panel t={t} lang={lang} data={data} act={act} postResult={postResult} />
      <Recommendation t={t} data={data} />
      <Treatment t={t} lang={lang} data={data} />
      <Contacts t={t} lang={lang} data={data} />
      <Timeline t={t} lang={lang} data={data} />
    </div>
  );
}
