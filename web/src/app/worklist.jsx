// The worklist: the open Tasks of my sites (the server narrows a coordinator's searches to its
// sites), overdue first, then today's, then by due date; filters by stage, task kind and site;
// the nurse in charge (the case's careManager: mine, nobody's, someone's);
// counts per stage; a search by name, identifier or birth date; refreshed every 20 seconds and
// when the window comes back, without a reload.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';

import { count, ext, refId, search } from './api.js';
import { ErrorNote, OPEN_STAGES, OPEN_TASK, age, dateText, fold, label, patientName, today } from './common.jsx';

const REFRESH_MS = 20000;

// The case a Task is about: its focus when it is the EpisodeOfCare, else the case the focused
// ServiceRequest names (investigation, chase-dxa, referral Tasks).
function caseOf(task, byRef) {
  const focus = task.focus?.reference || '';
  if (focus.startsWith('EpisodeOfCare/')) return focus.slice(14);
  const sr = byRef.get(focus);
  const c = ext(sr, 'fls-case')?.valueReference?.reference || sr?.supportingInfo?.[0]?.reference || '';
  return c.startsWith('EpisodeOfCare/') ? c.slice(14) : '';
}

async function loadRows() {
  const found = await search(`/Task?status=${OPEN_TASK}&_sort=due&_count=500&_include=Task:patient&_include=Task:focus&_include=Task:owner`, 4);
  const byRef = new Map(found.map((r) => [`${r.resourceType}/${r.id}`, r]));
  const tasks = found.filter((r) => r.resourceType === 'Task');
  const caseIds = [...new Set(tasks.map((tk) => caseOf(tk, byRef)).filter(Boolean))];
  const missing = caseIds.filter((id) => !byRef.has(`EpisodeOfCare/${id}`));
  for (let i = 0; i < missing.length; i += 100) {
    for (const ep of await search(`/EpisodeOfCare?_id=${missing.slice(i, i + 100).join(',')}&_count=100`, 1)) byRef.set(`EpisodeOfCare/${ep.id}`, ep);
  }
  return tasks.map((task) => {
    const caseId = caseOf(task, byRef);
    const episode = byRef.get(`EpisodeOfCare/${caseId}`);
    const patient = byRef.get(task.for?.reference || '');
    return {
      task,
      due: task.restriction?.period?.end || '',
      kind: task.code?.coding?.[0]?.code || '',
      kindText: task.code?.coding?.[0]?.display || task.code?.text || '',
      caseId,
      stage: ext(episode, 'pathway-stage')?.valueCode || '',
      site: refId(task.owner) || refId(episode?.managingOrganization),
      siteName: byRef.get(task.owner?.reference || '')?.name || '',
      nurse: episode?.careManager?.reference || '',
      nurseName: episode?.careManager?.display || (episode?.careManager?.reference || '').replace(/^Practitioner\//, ''),
      patient,
    };
  });
}

function order(a, b) {
  if (a.due !== b.due) return a.due < b.due ? -1 : 1;
  const urgent = (r) => (r.task.priority === 'urgent' ? 0 : 1);
  if (urgent(a) !== urgent(b)) return urgent(a) - urgent(b);
  return patientName(a.patient).localeCompare(patientName(b.patient));
}

function matches(row, q) {
  if (!q) return true;
  const p = row.patient;
  if (!p) return false;
  const words = fold(q).split(/\s+/).filter(Boolean);
  const name = fold((p.name || []).map((n) => [n.text, n.family, ...(n.given || [])].join(' ')).join(' '));
  const ids = (p.identifier || []).map((i) => fold(i.value));
  const birth = p.birthDate || '';
  const asDate = q.match(/^(\d{1,2})\/(\d{1,2})\/(\d{4})$/);
  const iso = asDate ? `${asDate[3]}-${asDate[2].padStart(2, '0')}-${asDate[1].padStart(2, '0')}` : q.trim();
  if (birth && birth === iso) return true;
  if (ids.some((i) => i === fold(q.trim()))) return true;
  return words.every((w) => name.includes(w));
}

// The nurse filter: '' every case, 'mine' the signed-in person's (their fhirUser is the case's
// careManager), 'none' the cases nobody follows yet, else one careManager's reference.
export function nurseMatches(filter, nurse, me) {
  if (!filter) return true;
  if (filter === 'mine') return Boolean(me) && nurse === me;
  if (filter === 'none') return !nurse;
  return nurse === filter;
}
export function savedNurseFilter() {
  try {
    return window.localStorage.getItem('fls-nurse-filter') || '';
  } catch {
    return '';
  }
}
export function saveNurseFilter(value) {
  try {
    window.localStorage.setItem('fls-nurse-filter', value);
  } catch {
    // storage refused: the choice lasts the page
  }
}

export function NurseFilter({ t, id, value, onChange, me, nurses }) {
  return (
    <div class="field">
      <label for={id}>{t('nurse.filter')}</label>
      <select id={id} value={value} data-testid={id} onChange={(e) => { saveNurseFilter(e.currentTarget.value); onChange(e.currentTarget.value); }}>
        <option value="">{t('nurse.all')}</option>
        {me && <option value="mine">{t('nurse.mine')}</option>}
        <option value="none">{t('nurse.unassigned')}</option>
        {nurses.filter(([ref]) => ref !== me).map(([ref, name]) => <option key={ref} value={ref}>{name}</option>)}
      </select>
    </div>
  );
}

export function Worklist({ t, lang, session, navigate }) {
  const [rows, setRows] = useState(null);
  const [counts, setCounts] = useState({});
  const [error, setError] = useState(null);
  const [filters, setFilters] = useState({ stage: '', kind: '', site: '', q: '', nurse: savedNurseFilter() });
  const me = session?.fhirUser || '';
  const [refreshed, setRefreshed] = useState('');
  const busy = useRef(false);

  const refresh = async () => {
    if (busy.current) return;
    busy.current = true;
    try {
      const [r, ...c] = await Promise.all([
        loadRows(),
        ...OPEN_STAGES.map((s) => count(`/EpisodeOfCare?stage=${s}&status=planned,active&_summary=count`)),
      ]);
      setRows(r);
      setCounts(Object.fromEntries(OPEN_STAGES.map((s, i) => [s, c[i]])));
      setError(null);
      setRefreshed(new Date().toISOString());
    } catch (e) {
      setError(e);
    } finally {
      busy.current = false;
    }
  };

  useEffect(() => {
    refresh();
    const timer = window.setInterval(refresh, REFRESH_MS);
    const onFocus = () => refresh();
    window.addEventListener('focus', onFocus);
    return () => { window.clearInterval(timer); window.removeEventListener('focus', onFocus); };
  }, []);

  const set = (name) => (e) => setFilters({ ...filters, [name]: e.currentTarget.value });
  const kinds = useMemo(() => [...new Map((rows || []).map((r) => [r.kind, r.kindText])).entries()].sort(), [rows]);
  const sites = useMemo(() => [...new Map((rows || []).filter((r) => r.site).map((r) => [r.site, r.siteName || r.site])).entries()]
    .sort((a, b) => a[1].localeCompare(b[1])), [rows]);
  const nurses = useMemo(() => [...new Map((rows || []).filter((r) => r.nurse).map((r) => [r.nurse, r.nurseName])).entries()]
    .sort((a, b) => a[1].localeCompare(b[1])), [rows]);
  const shown = (rows || []).filter((r) => (!filters.stage || r.stage === filters.stage) && (!filters.kind || r.kind === filters.kind)
    && (!filters.site || r.site === filters.site) && nurseMatches(filters.nurse, r.nurse, me) && matches(r, filters.q)).sort(order);
  const day = today();
  const groups = [
    ['overdue', shown.filter((r) => r.due && r.due < day)],
    ['today', shown.filter((r) => r.due === day)],
    ['later', shown.filter((r) => !r.due || r.due > day)],
  ];

  return (
    <section aria-labelledby="worklist-title" data-testid="worklist" data-refreshed={refreshed}>
      <h2 id="worklist-title">{t('app.page.worklist')}</h2>
      <ul class="stage-counts" aria-label={t('coord.countsPerStage')} data-testid="stage-counts">
        {OPEN_STAGES.map((s) => (
          <li key={s}><span class={`stage stage-${s}`}>{label(t, 'stage', s)}</span> <strong data-testid={`count-${s}`}>{counts[s] ?? '…'}</strong></li>
        ))}
      </ul>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <fieldset>
          <legend>{t('coord.filters')}</legend>
          <div class="field">
            <label for="q">{t('coord.searchPatient')}</label>
            <input id="q" type="search" value={filters.q} onInput={set('q')} aria-describedby="q-hint" data-testid="search" />
          </div>
          <p id="q-hint" class="hint">{t('coord.searchHint')}</p>
          <div class="field">
            <label for="stage">{t('coord.stage')}</label>
            <select id="stage" value={filters.stage} onChange={set('stage')}>
              <option value="">{t('coord.all')}</option>
              {OPEN_STAGES.map((s) => <option key={s} value={s}>{label(t, 'stage', s)}</option>)}
            </select>
          </div>
          <div class="field">
            <label for="kind">{t('coord.taskKind')}</label>
            <select id="kind" value={filters.kind} onChange={set('kind')}>
              <option value="">{t('coord.all')}</option>
              {kinds.map(([k, text]) => <option key={k} value={k}>{label(t, 'task', k, text)}</option>)}
            </select>
          </div>
          <div class="field">
            <label for="site">{t('coord.site')}</label>
            <select id="site" value={filters.site} onChange={set('site')}>
              <option value="">{t('coord.allSites')}</option>
              {sites.map(([id, name]) => <option key={id} value={id}>{name}</option>)}
            </select>
          </div>
          <NurseFilter t={t} id="nurse" value={filters.nurse} me={me} nurses={nurses} onChange={(v) => setFilters({ ...filters, nurse: v })} />
        </fieldset>
      </form>
      <ErrorNote t={t} error={error} />
      {!rows && !error && <p class="loading" role="status">{t('app.loading')}</p>}
      {rows && shown.length === 0 && <p data-testid="empty">{t('coord.nothingToDo')}</p>}
      {groups.map(([g, list]) => list.length > 0 && (
        <div key={g} class={`group group-${g}`}>
          <h3>{t(`coord.group.${g}`)} <span class="muted">({list.length})</span></h3>
          <div class="scroll" tabIndex={0} role="region" aria-label={t(`coord.group.${g}`)}>
            <table class="tasks">
              <thead>
                <tr>
                  <th scope="col">{t('coord.due')}</th>
                  <th scope="col">{t('coord.task')}</th>
                  <th scope="col">{t('coord.patient')}</th>
                  <th scope="col">{t('coord.stage')}</th>
                  <th scope="col">{t('coord.site')}</th>
                  <th scope="col">{t('nurse.label')}</th>
                </tr>
              </thead>
              <tbody>
                {list.map((r) => (
                  <tr key={r.task.id} data-testid="task-row" data-kind={r.kind} data-case={r.caseId}>
                    <td>{dateText(lang, r.due)}{r.task.priority === 'urgent' && <span class="badge urgent">{t('coord.urgent')}</span>}</td>
                    <td>{label(t, 'task', r.kind, r.kindText)}</td>
                    <td>
                      {r.caseId
                        ? <a href={`#/case/${encodeURIComponent(r.caseId)}`} onClick={(e) => { e.preventDefault(); navigate(`#/case/${encodeURIComponent(r.caseId)}`); }}>{patientName(r.patient) || r.caseId}</a>
                        : patientName(r.patient)}
                      {r.patient?.birthDate && <span class="muted"> · {t('coord.age', { years: age(r.patient.birthDate) })}</span>}
                    </td>
                    <td>{r.stage && <span class={`stage stage-${r.stage}`}>{label(t, 'stage', r.stage)}</span>}</td>
                    <td>{r.siteName || r.site}</td>
                    <td data-testid="row-nurse">{r.nurseName}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </div>
      ))}
    </section>
  );
}
