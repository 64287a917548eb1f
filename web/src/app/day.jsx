// A nurse's day: the calls due today or overdue (the FHIR twin of $call-list), each with what to
// ask for the patient's drug and where they are in the programme, and the outcome recorded in
// one click ($contact on the call's Task); "my patients" narrows them to the cases whose nurse in
// charge (careManager) is the signed-in person.
import { useEffect, useState } from 'preact/hooks';

import { ext, parameters, post, refId, search } from './api.js';
import { ErrorNote, OPEN_TASK, age, dateText, errorText, label, patientName, today } from './common.jsx';
import { NurseFilter, nurseMatches, savedNurseFilter } from './worklist.jsx';

const CALLS = 'follow-up-call,injection-reminder,infusion-reminder,denosumab-overdue,unreachable,accompaniment-call,relay';
// The drug classes the scripts are written for (ATC prefixes; workflow/data/osteoporosis-drugs.json).
const CLASSES = [
  ['M05BA08', 'zoledronic-acid'], ['M05BA', 'oral-bisphosphonate'], ['M05BB', 'oral-bisphosphonate'], ['M05BX04', 'denosumab'],
  ['M05BX06', 'romosozumab'], ['H05AA', 'teriparatide'], ['G03XC01', 'raloxifene'], ['G03C', 'hormone-therapy'], ['G03F', 'hormone-therapy'],
];

function drugOf(task) {
  const m = (task.description || '').match(/\b([A-Z]\d{2}[A-Z]{2}\d{2})\b/);
  return m ? m[1] : '';
}
function classOf(atc) {
  return (CLASSES.find(([prefix]) => atc.startsWith(prefix)) || [])[1] || '';
}

async function loadCalls() {
  const found = await search(`/Task?status=${OPEN_TASK}&code=${CALLS}&due=le${today()}&_sort=due&_count=200&_include=Task:patient&_include=Task:focus`, 3);
  const byRef = new Map(found.map((r) => [`${r.resourceType}/${r.id}`, r]));
  return found.filter((r) => r.resourceType === 'Task').map((task) => ({
    task,
    patient: byRef.get(task.for?.reference || ''),
    episode: byRef.get(task.focus?.reference || ''),
  }));
}

function Call({ t, lang, call, onDone }) {
  const [state, setState] = useState({ busy: false, error: null, done: '' });
  const { task, patient, episode } = call;
  const kind = task.code?.coding?.[0]?.code || '';
  const atc = drugOf(task);
  const drugClass = classOf(atc);
  const phone = ext(episode, 'contact-phone')?.valueString || (patient?.telecom || []).find((x) => x.system === 'phone')?.value || '';
  const record = async (reached, adherent, message) => {
    setState({ busy: true, error: null, done: '' });
    try {
      await post(`/EpisodeOfCare/${encodeURIComponent(refId(task.focus))}/$contact`, parameters([
        ['reached', 'valueBoolean', reached], ['task', 'valueReference', { reference: `Task/${task.id}` }],
        ['adherent', 'valueBoolean', adherent],
      ]), { ifMatch: task.meta?.versionId ? `W/"${task.meta.versionId}"` : undefined });
      setState({ busy: false, error: null, done: message });
      onDone();
    } catch (e) {
      setState({ busy: false, error: e, done: '' });
    }
  };
  const overdue = (task.restriction?.period?.end || '') < today();
  return (
    <li class="call" data-testid="call" data-kind={kind} data-task={task.id} data-case={refId(task.focus)}>
      <h3>
        <a href={`#/case/${encodeURIComponent(refId(task.focus))}`}>{patientName(patient)}</a>
        {patient?.birthDate && <span class="muted"> · {t('coord.age', { years: age(patient.birthDate) })}</span>}
        {task.priority === 'urgent' && <span class="badge urgent">{t('coord.urgent')}</span>}
        {overdue && <span class="badge">{t('coord.group.overdue')}</span>}
      </h3>
      <p><strong>{label(t, 'task', kind, task.code?.coding?.[0]?.display)}</strong> · {t('day.due', { day: dateText(lang, task.restriction?.period?.end) })}
        {phone && <> · <a href={`tel:${phone.replace(/\s+/g, '')}`}>{phone}</a></>}</p>
      {atc && <p>{t('day.drug', { drug: label(t, 'drug', atc) })}</p>}
      <div class="script" data-testid="script">
        <h4>{t('day.script')}</h4>
        <p>{drugClass ? label(t, 'script', drugClass) : t('script.general')}</p>
        {kind === 'unreachable' && <p>{t('script.unreachable')}</p>}
      </div>
      <div class="outcomes" role="group" aria-label={t('day.outcome')}>
        <button type="button" disabled={state.busy} data-testid="reached-adherent" onClick={() => record(true, true, t('day.done.adherent'))}>{t('day.reachedAdherent')}</button>
        <button type="button" disabled={state.busy} class="secondary" data-testid="reached-not-adherent" onClick={() => record(true, false, t('day.done.notAdherent'))}>{t('day.reachedNotAdherent')}</button>
        <button type="button" disabled={state.busy} class="secondary" data-testid="not-reached" onClick={() => record(false, undefined, t('day.done.notReached'))}>{t('day.notReached')}</button>
      </div>
      <div role="status" aria-live="polite">{state.done}</div>
      {state.error && <div class="error" role="alert"><p>{errorText(t, state.error)}</p></div>}
    </li>
  );
}

export function DayView({ t, lang, session }) {
  const [calls, setCalls] = useState(null);
  const [error, setError] = useState(null);
  const [nurse, setNurse] = useState(savedNurseFilter);
  const me = session?.fhirUser || '';
  const load = () => loadCalls().then((c) => { setCalls(c); setError(null); }).catch(setError);
  useEffect(() => { load(); }, []);
  const nurseOf = (c) => c.episode?.careManager?.reference || '';
  const nurses = [...new Map((calls || []).filter(nurseOf).map((c) => [nurseOf(c), c.episode.careManager.display || nurseOf(c)])).entries()]
    .sort((a, b) => a[1].localeCompare(b[1]));
  const shown = (calls || []).filter((c) => nurseMatches(nurse, nurseOf(c), me));
  return (
    <section aria-labelledby="day-title" data-testid="day">
      <h2 id="day-title">{t('app.page.day')}</h2>
      <p class="hint">{t('day.hint', { day: dateText(lang, today()) })}</p>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <NurseFilter t={t} id="day-nurse" value={nurse} me={me} nurses={nurses} onChange={setNurse} />
      </form>
      <ErrorNote t={t} error={error} />
      {!calls && !error && <p class="loading" role="status">{t('app.loading')}</p>}
      {calls && shown.length === 0 && <p data-testid="no-calls">{t('day.none')}</p>}
      {calls && shown.length > 0 && <ol class="calls">{shown.map((c) => <Call key={c.task.id} t={t} lang={lang} call={c} onDone={load} />)}</ol>}
    </section>
  );
}
