// The console's entry point: the key, the team, and the page named by the URL's hash.
import { api, ApiError, forgetKey, getKey, setKey } from './api.js';
import * as exportsPage from './exports.js';
import * as newExportPage from './new-export.js';
import * as schemasPage from './schemas.js';

const pages = { exports: exportsPage, new: newExportPage, schemas: schemasPage };
const $ = (id) => document.getElementById(id);
let cleanup = null;

function route() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  return { name: pages[name] ? name : 'exports', params: rest.map(decodeURIComponent) };
}

function showLogin(message = '') {
  if (cleanup) { cleanup(); cleanup = null; }
  $('page').hidden = true;
  $('page').replaceChildren();
  $('nav').hidden = true;
  $('who').hidden = true;
  $('login').hidden = false;
  $('api-key-error').textContent = message;
  $('api-key').setAttribute('aria-invalid', message ? 'true' : 'false');
  $('api-key').focus();
}

async function showPage() {
  if (!getKey()) return showLogin();
  const { name, params } = route();
  if (cleanup) { cleanup(); cleanup = null; }
  $('login').hidden = true;
  $('nav').hidden = false;
  $('who').hidden = false;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const page = $('page');
  page.hidden = false;
  page.replaceChildren();
  document.title = `${pages[name].title} · exports-api console`;
  cleanup = pages[name].render(page, params) || null;
}

/** Checks a key with GET /v1/team; shows the team's name. */
async function useKey(key) {
  try {
    const team = await api('GET', '/v1/team', { key });
    setKey(key);
    $('team-name').textContent = team.name;
    return true;
  } catch (e) {
    const msg = e instanceof ApiError && e.status === 401
      ? 'This key was not accepted (unknown or revoked).'
      : e.message;
    showLogin(msg);
    return false;
  }
}

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const key = $('api-key').value.trim();
  if (!key) return showLogin('Paste an API key first.');
  if (await useKey(key)) {
    $('api-key').value = '';
    showPage();
    $('main').focus();
  }
});

$('forget').addEventListener('click', () => {
  forgetKey();
  $('team-name').textContent = '';
  showLogin();
});

window.addEventListener('unauthorized', () => {
  forgetKey();
  showLogin('The server no longer accepts this key; paste another.');
});
window.addEventListener('hashchange', showPage);

(async () => {
  const key = getKey();
  if (key && await useKey(key)) showPage();
  else if (!key) showLogin();
})();
