// The coordinators' app (docs/coordinator-app.md): the worklist, a case and every pathway action,
// the day's calls. One page; the view is in the hash (#/, #/case/{id}, #/day) so that a link or a
// reload shows the same screen. Uses only the public API and the FLS operations; the session
// cookie of /login authenticates it.
import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';

import { initialLang, logout } from '../common/api.js';
import { get, setCsrf } from './api.js';
import { errorText } from './common.jsx';
import { translate } from '../messages.js';
import { CaseView } from './case.jsx';
import { DayView } from './day.jsx';
import { Worklist } from './worklist.jsx';
import '../dashboard/dashboard.css';
import './app.css';

function route() {
  const h = window.location.hash.replace(/^#\/?/, '');
  const [view, id] = h.split('/');
  if (view === 'case' && id) return { view: 'case', id: decodeURIComponent(id) };
  if (view === 'day') return { view: 'day' };
  return { view: 'worklist' };
}

function App() {
  const [lang, setLang] = useState(initialLang);
  const t = useMemo(() => (key, values) => translate(lang, key, values), [lang]);
  const [session, setSession] = useState(null);
  const [failure, setFailure] = useState(null);
  const [where, setWhere] = useState(route);

  useEffect(() => {
    const onHash = () => {
      setWhere(route());
      document.getElementById('main')?.focus();
    };
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  useEffect(() => {
    document.documentElement.lang = lang;
    document.title = t(`app.page.${where.view}`) + ' — ' + t('coord.title');
    try {
      window.localStorage.setItem('fls-lang', lang);
    } catch {
      // storage refused: the choice lasts the page
    }
  }, [lang, where]);

  useEffect(() => {
    get('/auth/session', { accept: 'application/json' }).then((s) => {
      setCsrf(s.csrf);
      setSession(s);
    }).catch((e) => {
      if (e.status === 401) {
        window.location.assign(`/login?lang=${lang}&next=${encodeURIComponent('/app' + window.location.hash)}`);
      } else {
        setFailure(e);
      }
    });
  }, []);

  const other = lang === 'fr' ? 'en' : 'fr';
  const navigate = (hash) => { window.location.hash = hash; };
  return (
    <>
      <a class="skip" href="#main">{t('app.skip')}</a>
      <header class="top">
        <h1>{t('coord.title')}</h1>
        <nav aria-label={t('coord.nav')}>
          <a href="#/" aria-current={where.view === 'worklist' ? 'page' : undefined}>{t('app.page.worklist')}</a>
          <a href="#/day" aria-current={where.view === 'day' ? 'page' : undefined}>{t('app.page.day')}</a>
          <a href="/dashboard">{t('coord.dashboard')}</a>
        </nav>
        <div class="who">
          {session && <span data-testid="who">{t('app.signedInAs', { who: session.subject || '', role: t(`role.${session.role}`) })}</span>}
          <button type="button" class="link" lang={other} aria-label={t('app.languageLabel')} data-testid="language"
            onClick={() => setLang(other)}>{t('app.language')}</button>
          <button type="button" class="link" onClick={() => logout(session, lang, '/app')}>{t('app.logout')}</button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {failure && (
          <div class="error" role="alert"><h2>{t('coord.unavailable')}</h2><p>{errorText(t, failure)}</p></div>
        )}
        {session && where.view === 'worklist' && <Worklist t={t} lang={lang} session={session} navigate={navigate} />}
        {session && where.view === 'case' && <CaseView key={where.id} t={t} lang={lang} session={session} id={where.id} />}
        {session && where.view === 'day' && <DayView t={t} lang={lang} session={session} />}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app'));
