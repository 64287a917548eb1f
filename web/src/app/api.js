// The coordinators' app's calls: the public FHIR API and the FLS operations only
// (spec operations.md), same origin, the session cookie; writes carry the session's CSRF token
// and, for a case, If-Match with the version the screen shows (a 412 is a concurrent edit).
import { ApiError, request } from '../common/api.js';

export { ApiError };

let csrfToken = '';
export function setCsrf(token) {
  csrfToken = token || '';
}

const call = (method, path, { accept = 'application/fhir+json', ...opts } = {}) =>
  request(method, path, { ...opts, accept, csrf: csrfToken });

export const get = (path, opts) => call('GET', path, opts).then((r) => r.body);
export const read = (path, opts) => call('GET', path, opts);
export const post = (path, body, opts = {}) => call('POST', path, { ...opts, body });
export const put = (path, body, opts = {}) => call('PUT', path, { ...opts, body });

// Every resource of a search, page after page (at most `pages` pages), with the included ones.
export async function search(path, pages = 10) {
  const out = [];
  let url = path;
  for (let page = 0; url && page < pages; page += 1) {
    const bundle = await get(url);
    for (const e of bundle?.entry || []) {
      if (e.resource?.resourceType && e.resource.resourceType !== 'OperationOutcome') out.push(e.resource);
    }
    const next = (bundle?.link || []).find((l) => l.relation === 'next')?.url;
    url = next ? (() => { const u = new URL(next, window.location.origin); return u.pathname + u.search; })() : null;
  }
  return out;
}

export async function count(path) {
  const bundle = await get(path);
  return bundle?.total ?? 0;
}

// A Parameters resource of [name, value-type, value] triples (undefined values left out).
export function parameters(parts) {
  return {
    resourceType: 'Parameters',
    parameter: parts.filter(([, , v]) => v !== undefined && v !== null && v !== '')
      .map(([name, type, value]) => ({ name, [type]: value })),
  };
}

export function ext(resource, name) {
  return (resource?.extension || []).find((e) => e.url.endsWith(`/StructureDefinition/${name}`));
}

export function refId(reference) {
  const r = reference?.reference || '';
  return r.slice(r.lastIndexOf('/') + 1);
}
