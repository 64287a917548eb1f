// The quality dashboard (docs/kpis.md, "The dashboard"): one call to $fls-dashboard for the
// period, subject and framework chosen, then $fls-projection for the "what if". Uses only the
// public API; the session cookie of /login authenticates it.
import { render } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';

import { ApiError, getJson, initialLang, logout, query } from '../common/api.js';
import { plusDays, today } from '../common/format.js';
import { translate } from '../messages.js';
import { Bpf, Goals, KpiTable, Projection, Sites, Trend } from './sections.jsx';
import './dashboard.css';

function initialFilters() {
  const q = new URLSearchParams(window.location.search);
  const end = q.get('periodEnd') || today();
  return {
    periodStart: q.get('periodStart') || plusDays(end, -364),
    periodEnd: end,
    subject: q.get('subject') || '',
    framework: q.get('framework') || 'fls-db',
    baselineStart: q.get('baselineStart') || '',
    baselineEnd: q.get('baselineEnd') || '',
  };
}

function ErrorBox({ t, error, onRetry }) {
  let text;
  if (error.status === 0) text = t('error.network');
  else if ([401, 403, 404, 503].includes(error.status)) text = t(`error.${error.status}`);
  else if (error.status === 400) text = t('error.400', { why: error.diagnostics });
  else text = t('error.other', { status: error.status, why: error.diagnostics });
  return (
    <div class="error" role="alert" data-testid="error">
      <h2>{t('error.title')}</h2>
      <p>{text}</p>
      {error.status === 401
        ? <p><a href="/login?next=/dashboard">{t('app.signIn')}</a></p>
        : <button type="button" onClick={onRetry}>{t('app.retry')}</button>}
    </div>
  );
}

function Filters({ t, filters, organizations, onChange }) {
  const [draft, setDraft] = useState(filters);
  useEffect(() => setDraft(filters), [filters]);
  const set = (name) => (e) => setDraft({ ...draft, [name]: e.currentTarget.value });
  return (
    <form class="filters" onSubmit={(e) => { e.preventDefault(); onChange(draft); }}>
      <fieldset>
        <legend>{t('filters.legend')}</legend>
        <div class="field">
          <label for="periodStart">{t('filters.periodStart')}</label>
          <input id="periodStart" type="date" required value={draft.periodStart} onInput={set('periodStart')} />
        </div>
        <div class="field">
          <label for="periodEnd">{t('filters.periodEnd')}</label>
          <input id="periodEnd" type="date" required value={draft.periodEnd} onInput={set('periodEnd')} />
        </div>
        <div class="field">
          <label for="subject">{t('filters.subject')}</label>
          <select id="subject" value={draft.subject} onChange={set('subject')}>
            <option value="">{t('filters.allSites')}</option>
            {organizations.map((o) => <option key={o.id} value={`Organization/${o.id}`}>{o.name}</option>)}
          </select>
        </div>
        <div class="field">
          <label for="framework">{t('filters.framework')}</label>
          <select id="framework" value={draft.framework} onChange={set('framework')}>
            <option value="fls-db">UK FLS-DB</option>
            <option value="iof">IOF</option>
          </select>
        </div>
        <div class="field">
          <label for="baselineStart">{t('filters.baselineStart')}</label>
          <input id="baselineStart" type="date" value={draft.baselineStart} onInput={set('baselineStart')}
            aria-describedby="baselineHint" />
        </div>
        <div class="field">
          <label for="baselineEnd">{t('filters.baselineEnd')}</label>
          <input id="baselineEnd" type="date" value={draft.baselineEnd} onInput={set('baselineEnd')}
            aria-describedby="baselineHint" />
        </div>
        <p id="baselineHint" class="hint">{t('filters.baselineHint')}</p>
        <button type="submit">{t('filters.show')}</button>
      </fieldset>
    </form>
  );
}

// Every Organization the caller may see, by name (a FHIR search, page after page).
async function loadOrganizations() {
  const out = [];
  let url = '/Organization?_count=200';
  for (let page = 0; url && page < 20; page += 1) {
    const bundle = await getJson(url, { accept: 'application/fhir+json' });
    for (const e of bundle?.entry || []) {
      if (e.resource?.id) out.push({ id: e.resource.id, name: e.resource.name || e.resource.id });
    }
    const next = (bundle?.link || []).find((l) => l.relation === 'next')?.url;
    url = next ? new URL(next, window.location.origin).pathname + new URL(next, window.location.origin).search : null;
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

function App() {
  const [lang, setLang] = useState(initialLang);
  const t = useMemo(() => (key, values) => translate(lang, key, values), [lang]);
  const [session, setSession] = useState(null);
  const [organizations, setOrganizations] = useState([]);
  const [filters, setFilters] = useState(initialFilters);
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [loading, setLoading] = useState(false);
  const [attempt, setAttempt] = useState(0);
  const abort = useRef(null);

  useEffect(() => {
    document.documentElement.lang = lang;
    document.title = t('app.title');
    try {
      window.localStorage.setItem('fls-lang', lang);
    } catch {
      // storage refused: the choice lasts the page
    }
  }, [lang]);

  useEffect(() => {
    getJson('/auth/session').then((s) => {
      setSession(s);
      loadOrganizations().then(setOrganizations).catch(() => setOrganizations([]));
    }).catch((e) => {
      if (e.status === 401) window.location.assign(`/login?lang=${lang}&next=${encodeURIComponent('/dashboard' + window.location.search)}`);
      else setError(e);
    });
  }, []);

  useEffect(() => {
    if (!session) return;
    const q = query({ ...filters, lang });
    window.history.replaceState(null, '', `/dashboard?${q}`);
    abort.current?.abort();
    const controller = new AbortController();
    abort.current = controller;
    setLoading(true);
    setError(null);
    const { periodStart, periodEnd, subject, framework, baselineStart, baselineEnd } = filters;
    getJson(`/$fls-dashboard?${query({ periodStart, periodEnd, subject, framework, baselineStart, baselineEnd })}`,
      { signal: controller.signal })
      .then((d) => { setData(d); setLoading(false); })
      .catch((e) => {
        if (e.name === 'AbortError') return;
        setData(null);
        setError(e instanceof ApiError ? e : new ApiError(0, ''));
        setLoading(false);
      });
  }, [session, filters, attempt]);

  useEffect(() => {
    if (session) window.history.replaceState(null, '', `/dashboard?${query({ ...filters, lang })}`);
  }, [lang]);

  const other = lang === 'fr' ? 'en' : 'fr';
  return (
    <>
      <a class="skip" href="#main">{t('app.skip')}</a>
      <header class="top">
        <h1>{t('app.title')}</h1>
        <div class="who">
          {session && <span data-testid="who">{t('app.signedInAs', { who: session.subject || session.login || '', role: session.role || '' })}</span>}
          <button type="button" class="link" lang={other} aria-label={t('app.languageLabel')} data-testid="language"
            onClick={() => setLang(other)}>{t('app.language')}</button>
          <button type="button" class="link" onClick={() => logout(session, lang)}>{t('app.logout')}</button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Filters t={t} filters={filters} organizations={organizations} onChange={setFilters} />
        {loading && <p class="loading" role="status" data-testid="loading">{t('app.loading')}</p>}
        {error && <ErrorBox t={t} error={error} onRetry={() => setAttempt(attempt + 1)} />}
        {data && !error && (
          <div class="sections" data-testid="dashboard" data-period={`${data.period.start}/${data.period.end}`}
            data-subject={data.subject || ''} aria-busy={loading ? 'true' : 'false'}>
            <KpiTable t={t} lang={lang} data={data} />
            <Trend t={t} lang={lang} data={data} />
            <Goals t={t} lang={lang} data={data} />
            <Projection t={t} lang={lang} data={data} filters={filters} />
            <Bpf t={t} lang={lang} data={data} />
            <Sites t={t} lang={lang} data={data} />
          </div>
        )}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app'));
