// Calls to the server's public API from the pages: same origin, the session cookie, JSON. A
// refusal becomes an ApiError with the status and the OperationOutcome's words.
export class ApiError extends Error {
  constructor(status, diagnostics) {
    super(diagnostics || `HTTP ${status}`);
    this.status = status;
    this.diagnostics = diagnostics || '';
  }
}

export async function getJson(path, { accept = 'application/json', signal } = {}) {
  let response;
  try {
    response = await fetch(path, { credentials: 'same-origin', headers: { Accept: accept }, signal });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, '');
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const words = body?.issue?.map((i) => i.diagnostics || i.details?.text || '').filter(Boolean).join(' ') || '';
    throw new ApiError(response.status, words);
  }
  return body;
}

// The query string of the defined values of `params`.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  return q.toString();
}
