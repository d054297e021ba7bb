// The /v1 API with the key of this tab (sessionStorage only).

const KEY = 'exports-api.key';

export function getKey() { return sessionStorage.getItem(KEY); }
export function setKey(k) { sessionStorage.setItem(KEY, k); }
export function forgetKey() { sessionStorage.removeItem(KEY); }

/** An error answer: `status` and the server's `message`. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * Calls the API: `path` under the origin, `opts.query` (object; empty values left out),
 * `opts.json` (a JSON body) or `opts.body` with `opts.type`. Answers the parsed JSON.
 */
export async function api(method, path, opts = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(opts.query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { 'x-api-key': opts.key ?? getKey() ?? '', accept: 'application/json' };
  let body;
  if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  } else if (opts.body !== undefined) {
    headers['content-type'] = opts.type;
    body = opts.body;
  }
  let resp;
  try {
    resp = await fetch(url, { method, headers, body, cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, `The server did not answer (${e.message}).`);
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!resp.ok) {
    const message = (data && data.message) || `${resp.status} ${resp.statusText}`;
    const err = new ApiError(resp.status, message);
    if (resp.status === 401 && !opts.key) window.dispatchEvent(new CustomEvent('unauthorized'));
    throw err;
  }
  return data;
}
