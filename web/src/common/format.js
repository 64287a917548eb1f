// Numbers and dates as the chosen language writes them.
const locales = { fr: 'fr-FR', en: 'en-GB' };

export function locale(lang) {
  return locales[lang] || locales.fr;
}

export function percent(lang, value, digits = 1) {
  if (value === null || value === undefined) return '';
  return new Intl.NumberFormat(locale(lang), {
    style: 'percent', minimumFractionDigits: digits, maximumFractionDigits: digits,
  }).format(value);
}

export function signedPercent(lang, value, digits = 1) {
  if (value === null || value === undefined) return '';
  return new Intl.NumberFormat(locale(lang), {
    style: 'percent', minimumFractionDigits: digits, maximumFractionDigits: digits, signDisplay: 'exceptZero',
  }).format(value);
}

export function decimal(lang, value, digits = 1) {
  if (value === null || value === undefined) return '';
  return new Intl.NumberFormat(locale(lang), { minimumFractionDigits: 0, maximumFractionDigits: digits }).format(value);
}

export function integer(lang, value) {
  if (value === null || value === undefined) return '';
  return new Intl.NumberFormat(locale(lang), { maximumFractionDigits: 0 }).format(value);
}

// YYYY-MM-DD as the language writes a date (in UTC: a civil date has no time zone).
export function date(lang, text) {
  if (!text) return '';
  const [y, m, d] = text.split('-').map(Number);
  return new Intl.DateTimeFormat(locale(lang), { dateStyle: 'long', timeZone: 'UTC' }).format(new Date(Date.UTC(y, m - 1, d)));
}

// The quarter of a YYYY-MM-DD: "T1 2026" / "Q1 2026".
export function quarter(lang, text) {
  const [y, m] = text.split('-').map(Number);
  return `${lang === 'fr' ? 'T' : 'Q'}${Math.floor((m - 1) / 3) + 1} ${y}`;
}

// Today as YYYY-MM-DD in the browser's zone, and a day `n` days away.
export function today() {
  const now = new Date();
  return new Date(Date.UTC(now.getFullYear(), now.getMonth(), now.getDate())).toISOString().slice(0, 10);
}
export function plusDays(text, n) {
  const [y, m, d] = text.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}
