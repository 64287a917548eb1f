// What the app's screens share: errors in words (with what to do), labels of codes, dates.
import { date as longDate } from '../common/format.js';

// An API error in words: what happened and what to do. A 412 is told apart by the caller.
export function errorText(t, e) {
  const why = e?.diagnostics || '';
  switch (e?.status) {
    case 0: return t('coord.error.network');
    case 400: return t('coord.error.400', { why });
    case 401: return t('coord.error.401');
    case 403: return t('coord.error.403');
    case 404: return t('coord.error.404');
    case 409: return t('coord.error.409', { why });
    case 412: return t('coord.error.412');
    case 422: return t('coord.error.422', { why });
    case 429: return t('coord.error.429');
    case 503: return t('coord.error.503');
    default: return t('coord.error.other', { status: e?.status ?? '?', why });
  }
}

export function ErrorNote({ t, error, onDismiss }) {
  if (!error) return null;
  return (
    <div class="error" role="alert" data-testid="action-error">
      <p>{errorText(t, error)}</p>
      {error.status === 401 && <p><a href={`/login?next=${encodeURIComponent('/app' + window.location.hash)}`}>{t('app.signIn')}</a></p>}
      {onDismiss && <button type="button" class="link" onClick={onDismiss}>{t('coord.dismiss')}</button>}
    </div>
  );
}

// Today as the browser's calendar has it (the nurse's screen is in the site's zone).
export function today() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

export function plusDays(text, n) {
  const [y, m, d] = text.split('-').map(Number);
  const x = new Date(Date.UTC(y, m - 1, d + n));
  return x.toISOString().slice(0, 10);
}

export function dateText(lang, text) {
  if (!text) return '';
  return longDate(lang, text.slice(0, 10));
}

export function dateTimeText(lang, text) {
  if (!text) return '';
  if (text.length <= 10) return dateText(lang, text);
  return new Intl.DateTimeFormat(lang === 'en' ? 'en-GB' : 'fr-FR', { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(text));
}

export function age(birthDate, on = today()) {
  if (!birthDate || birthDate.length < 10) return null;
  const [by, bm, bd] = birthDate.split('-').map(Number);
  const [y, m, d] = on.split('-').map(Number);
  return y - by - (m < bm || (m === bm && d < bd) ? 1 : 0);
}

export function patientName(p) {
  const n = (p?.name || [])[0];
  if (!n) return '';
  if (n.text) return n.text;
  return [...(n.given || []), (n.family || '').toUpperCase()].filter(Boolean).join(' ');
}

// A label from the messages when there is one, else the server's text, else the code.
export function label(t, prefix, code, fallback) {
  const key = `${prefix}.${code}`;
  const text = t(key);
  return text === key ? (fallback || code) : text;
}

// Folds case and accents for a search ("Hélène" finds "helene").
export function fold(s) {
  return (s || '').normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();
}

export const OPEN_STAGES = ['identified', 'investigating', 'treatment-decision', 'treating', 'follow-up'];
export const OPEN_TASK = 'requested,received,accepted,ready,in-progress,on-hold';
