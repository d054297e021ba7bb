// Schemas and results: browse schemas (fields as a tree), create one from pasted JSON,
// upload an NDJSON file of results, page through a schema's results.
import { api } from './api.js';
import { clearErrors, showError } from './errors.js';
import { field, fill, fmtNum, fmtTime, h, toast } from './dom.js';
import { allSchemas } from './new-export.js';

export const title = 'Schemas';

const EXAMPLE = {
  name: 'Receipts',
  description: 'Till receipts',
  schema: {
    fields: [
      { key: 'merchant', type: 'string', label: 'Merchant' },
      { key: 'total', type: 'number', label: 'Total' },
      { key: 'items', type: 'array', label: 'Items', fields: [
        { key: 'name', type: 'string', label: 'Name' },
        { key: 'price', type: 'number', label: 'Price' },
      ] },
    ],
  },
};

export function render(root, params) {
  let alive = true;
  const listEl = h('ul', { class: 'schema-list', id: 'schema-list' });
  const detail = h('div', { id: 'schema-detail' });
  const top = h('p', { class: 'error form-error', role: 'alert' });
  fill(root,
    h('div', { class: 'page-head' }, h('h1', {}, 'Schemas and results'),
      h('a', { class: 'button', href: '#/schemas/new' }, 'New schema')),
    top,
    h('div', { class: 'split' },
      h('nav', { class: 'card', 'aria-label': 'Schemas' }, listEl),
      detail));

  const selected = params[0] || '';
  allSchemas().then((schemas) => {
    if (!alive) return;
    fill(listEl, schemas.length ? schemas.map((s) => h('li', {}, h('a', {
      href: `#/schemas/${s.id}`, 'aria-current': s.id === selected ? 'true' : null,
    }, s.name))) : h('li', { class: 'muted' }, 'No schemas yet.'));
    if (selected === 'new' || (!selected && !schemas.length)) createForm(detail);
    else {
      const s = schemas.find((x) => x.id === selected) || schemas[0];
      if (s) showSchema(detail, s, () => alive);
    }
  }).catch((e) => { if (alive) top.textContent = e.message; });
  return () => { alive = false; };
}

function fieldTree(fields) {
  return h('ul', {}, fields.map((f) => h('li', {},
    h('code', {}, f.key), h('span', { class: 'type' }, f.type), f.label ? h('span', { class: 'muted' }, ` — ${f.label}`) : null,
    f.fields ? fieldTree(f.fields) : null)));
}

function createForm(detail) {
  const text = h('textarea', { id: 'schema-json', spellcheck: 'false', class: 'mono' });
  text.value = JSON.stringify(EXAMPLE, null, 2);
  const top = h('p', { class: 'error form-error', role: 'alert', tabindex: -1 });
  const f = field('Schema as JSON', text, 'The body of POST /v1/schemas: name, description, schema.fields (key, type, label, fields).');
  const fields = { body: { control: text, error: f.error } };
  const form = h('form', { novalidate: true, id: 'schema-form' }, top, f.wrap,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create schema')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(fields, top);
    let body;
    try {
      body = JSON.parse(text.value);
    } catch (e) {
      f.error.textContent = `Not valid JSON: ${e.message}`;
      text.setAttribute('aria-invalid', 'true');
      text.focus();
      return;
    }
    try {
      const s = await api('POST', '/v1/schemas', { json: body });
      toast(`Schema ${s.name} created`);
      location.hash = `#/schemas/${s.id}`;
    } catch (e) {
      // every message of this form is about the JSON: show it beside it
      f.error.textContent = e.message;
      text.setAttribute('aria-invalid', 'true');
    }
  });
  fill(detail, h('section', { class: 'card', 'aria-labelledby': 'new-schema-title' },
    h('h2', { id: 'new-schema-title' }, 'New schema'), form));
  text.focus();
}

function showSchema(detail, s, isAlive) {
  const resultsWrap = h('div', { class: 'table-wrap' });
  const pager = h('div', { class: 'pager' });
  const resultsError = h('p', { class: 'error form-error', role: 'alert' });
  let page = 1;

  async function loadResults() {
    try {
      const { data, meta } = await api('GET', '/v1/results', { query: { schema_id: s.id, page, limit: 20, include_extraction: true } });
      if (!isAlive()) return;
      resultsError.textContent = '';
      fill(resultsWrap, data.length ? h('table', { id: 'results-table', class: 'cards' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'File'), h('th', { scope: 'col' }, 'Created (UTC)'), h('th', { scope: 'col' }, 'Extraction'))),
        h('tbody', {}, data.map((r) => h('tr', {},
          h('td', { 'data-label': 'File' }, h('div', { class: 'cell' }, r.file_name ?? '—')),
          h('td', { class: 'nowrap', 'data-label': 'Created' }, h('div', { class: 'cell' }, fmtTime(r.createdAt))),
          h('td', { 'data-label': 'Extraction' }, h('div', { class: 'cell' },
            h('code', { class: 'extraction', title: JSON.stringify(r.extraction) }, JSON.stringify(r.extraction))))))))
        : h('p', { class: 'empty' }, 'No results yet: upload an NDJSON file above.'));
      const last = Math.max(meta.totalPages, 1);
      fill(pager, h('span', { class: 'muted', id: 'results-count' }, `${fmtNum(meta.total)} result${meta.total === 1 ? '' : 's'} · page ${meta.page} of ${last}`),
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'secondary small', disabled: page <= 1, onclick: () => { page--; loadResults(); } }, '← Previous'),
          h('button', { type: 'button', class: 'secondary small', disabled: page >= last, onclick: () => { page++; loadResults(); } }, 'Next →')));
    } catch (e) {
      if (isAlive()) resultsError.textContent = e.message;
    }
  }

  fill(detail,
    h('section', { class: 'card', 'aria-labelledby': 'schema-title' },
      h('div', { class: 'page-head' }, h('h2', { id: 'schema-title' }, s.name),
        h('a', { class: 'button', href: `#/new/${s.id}` }, 'Export…')),
      s.description ? h('p', { class: 'muted' }, s.description) : null,
      h('p', { class: 'muted mono' }, s.id),
      h('h3', {}, 'Fields'),
      h('div', { class: 'tree' }, fieldTree(s.schema.fields))),
    uploadBox(s, () => { page = 1; loadResults(); }),
    h('section', { class: 'card', 'aria-labelledby': 'results-title' },
      h('h2', { id: 'results-title' }, 'Results'), resultsError, resultsWrap, pager));
  loadResults();
}

function uploadBox(s, uploaded) {
  const input = h('input', { type: 'file', id: 'ndjson-file', accept: '.ndjson,.jsonl,.json,application/x-ndjson' });
  const message = h('p', { role: 'status', id: 'upload-status' });
  const error = h('p', { class: 'error form-error', role: 'alert', id: 'upload-error' });
  const drop = h('div', { class: 'drop', id: 'drop-zone' },
    h('p', {}, 'Drop an NDJSON file here (one ', h('code', {}, '{"extraction": {…}, "file_name": …, "createdAt": …}'), ' per line), or'),
    h('label', { for: 'ndjson-file', class: 'legend' }, 'choose a file: '), input);

  async function send(file) {
    error.textContent = '';
    message.textContent = `Uploading ${file.name} (${fmtNum(file.size)} bytes)…`;
    try {
      const r = await api('POST', `/v1/schemas/${s.id}/results`, { body: file, type: 'application/x-ndjson' });
      message.textContent = '';
      message.append(h('span', { class: 'ok' }, `${fmtNum(r.inserted)} result${r.inserted === 1 ? '' : 's'} added from ${file.name}.`));
      uploaded();
    } catch (e) {
      message.textContent = '';
      error.textContent = `${file.name} was not stored: ${e.message}`;
    }
    input.value = '';
  }
  input.addEventListener('change', () => { if (input.files[0]) send(input.files[0]); });
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    const file = ev.dataTransfer.files[0];
    if (file) send(file);
  });
  return h('section', { class: 'card', 'aria-labelledby': 'upload-title' },
    h('h2', { id: 'upload-title' }, 'Upload results'), drop, message, error);
}
