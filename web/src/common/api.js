// Calls to the server's public API from the pages: same origin, the session cookie, JSON. A
// refusal becomes an ApiError with the status and the OperationOutcome's words.
export class ApiError extends Error {
  constructor(status, diagnostics) {
    super(diagnostics || `HTTP ${status}`);
    this.status = status;
    this.diagnostics = diagnostics || '';
  }
}

// One call: `body` (JSON) sent when given, the CSRF token and If-Match when given. Answers the
// parsed body and the ETag (the resource's version when the header is not exposed).
export async function request(method, path, { body, ifMatch, csrf, accept = 'application/json', signal } = {}) {
  const headers = { Accept: accept };
  if (body !== undefined) headers['Content-Type'] = 'application/fhir+json';
  if (method !== 'GET' && csrf !== undefined) headers['X-CSRF-Token'] = csrf;
  if (ifMatch) headers['If-Match'] = ifMatch;
  let response;
  try {
    response = await fetch(path, {
      method, credentials: 'same-origin', headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, '');
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const words = json?.issue?.map((i) => i.diagnostics || i.details?.text || '').filter(Boolean).join(' ') || '';
    throw new ApiError(response.status, words);
  }
  const version = json?.meta?.versionId;
  return { body: json, etag: response.headers.get('ETag') || (version ? `W/"${version}"` : null) };
}

export async function getJson(path, { accept = 'application/json', signal } = {}) {
  return (await request('GET', path, { accept, signal })).body;
}

// The language of the pages: ?lang=, else the last choice, else French.
export function initialLang() {
  const q = new URLSearchParams(window.location.search).get('lang');
  if (q === 'fr' || q === 'en') return q;
  try {
    const saved = window.localStorage.getItem('fls-lang');
    if (saved === 'fr' || saved === 'en') return saved;
  } catch {
    // storage refused: French
  }
  return 'fr';
}

// Ends the session (POST /auth/logout with the session's CSRF token), then the login page.
export async function logout(session, lang, next = '') {
  try {
    await fetch('/auth/logout', { method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': session?.csrf || '' } });
  } finally {
    window.location.assign(`/login?lang=${lang}${next ? `&next=${encodeURIComponent(next)}` : ''}`);
  }
}

// The query string of the defined values of `params`.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  return q.toString();
}
