// Exports: the team's export jobs, paged, sorted and searched through the list parameters;
// running jobs refresh by themselves.
import { api } from './api.js';
import { confirmDialog, fill, fmtBytes, fmtDate, fmtNum, fmtTime, h, toast } from './dom.js';

export const title = 'Exports';

const RUNNING = new Set(['PENDING', 'PROCESSING']);
const FIRST_POLL_MS = 1000;
const MAX_POLL_MS = 10000;

export function render(root) {
  const state = { page: 1, limit: 20, sort_by: 'createdAt', sort_order: 'desc', search: '' };
  let timer = null;
  let delay = FIRST_POLL_MS;
  let alive = true;
  let seq = 0;

  const status = h('p', { class: 'error form-error', role: 'alert' });
  const search = h('input', { type: 'search', id: 'export-search', placeholder: 'id, status, schema name…', maxlength: 200 });
  const limit = h('select', { id: 'export-limit' }, [10, 20, 50, 100].map((n) => h('option', { value: n, selected: n === 20 }, n)));
  const SORTS = [['createdAt:desc', 'Newest first'], ['createdAt:asc', 'Oldest first'], ['updatedAt:desc', 'Last changed'],
    ['status:asc', 'Status'], ['start_date:asc', 'Start date'], ['end_date:desc', 'End date, latest first']];
  const sort = h('select', { id: 'export-sort' }, SORTS.map(([v, l]) => h('option', { value: v }, l)));
  sort.addEventListener('change', () => {
    [state.sort_by, state.sort_order] = sort.value.split(':');
    state.page = 1;
    load(true);
  });
  const polling = h('span', { class: 'muted', id: 'export-polling', 'aria-live': 'polite' });
  const tableWrap = h('div', { class: 'table-wrap' });
  const pager = h('div', { class: 'pager' });

  let debounce;
  search.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { state.search = search.value.trim(); state.page = 1; load(true); }, 300);
  });
  limit.addEventListener('change', () => { state.limit = Number(limit.value); state.page = 1; load(true); });

  fill(root,
    h('div', { class: 'page-head' },
      h('h1', {}, 'Exports'),
      h('div', { class: 'actions' },
        polling,
        h('button', { type: 'button', class: 'secondary', onclick: () => load(true) }, 'Refresh'),
        h('a', { class: 'button', href: '#/new' }, 'New export'))),
    h('div', { class: 'toolbar' },
      h('div', { class: 'field' }, h('label', { for: 'export-search' }, 'Search'), search),
      h('div', { class: 'field small' }, h('label', { for: 'export-sort' }, 'Sort'), sort),
      h('div', { class: 'field small' }, h('label', { for: 'export-limit' }, 'Per page'), limit)),
    status, tableWrap, pager);

  function sortButton(label, key) {
    const active = state.sort_by === key;
    const arrow = active ? (state.sort_order === 'asc' ? ' ▲' : ' ▼') : '';
    return h('th', { scope: 'col', 'aria-sort': active ? (state.sort_order === 'asc' ? 'ascending' : 'descending') : 'none' },
      h('button', {
        type: 'button', class: 'sort',
        onclick: () => {
          if (state.sort_by === key) state.sort_order = state.sort_order === 'asc' ? 'desc' : 'asc';
          else { state.sort_by = key; state.sort_order = key === 'createdAt' ? 'desc' : 'asc'; }
          state.page = 1;
          load(true);
        },
      }, label + arrow));
  }

  /** A cell; `label` names it on narrow screens, where rows become cards. */
  const cell = (label, cls, ...children) => h('td', { class: cls, 'data-label': label }, h('div', { class: 'cell' }, ...children));

  function row(e) {
    const progress = RUNNING.has(e.status) && e.progress && typeof e.progress.percent === 'number'
      ? h('progress', { max: 100, value: e.progress.percent, 'aria-label': `${e.progress.percent}% done` })
      : null;
    const actions = h('div', { class: 'actions' });
    if (e.status === 'COMPLETED') {
      actions.append(h('button', { type: 'button', class: 'small', onclick: () => download(e) }, 'Download'));
    }
    actions.append(h('button', { type: 'button', class: 'small secondary', onclick: () => remove(e) }, 'Delete'));
    const schemaName = e.schema ? e.schema.name : e.schema_id;
    return h('tr', { dataset: { exportId: e.id, status: e.status } },
      cell('Status', '',
        h('span', { class: `badge ${e.status}` }, e.status),
        progress,
        e.status === 'FAILED' && e.error ? h('div', { class: 'failure' }, e.error) : null),
      cell('Schema', '',
        h('div', {}, schemaName),
        e.expand_array ? h('div', { class: 'muted' }, `rows per ${e.expand_array}`) : null,
        e.format && e.format !== 'csv' ? h('div', { class: 'muted' }, e.format) : null,
        h('div', { class: 'muted mono', title: e.id }, e.id.slice(0, 8) + '…')),
      cell('Dates', 'nowrap', `${fmtDate(e.start_date)} → ${fmtDate(e.end_date)}`),
      cell('Rows', 'num', fmtNum(e.row_count)),
      cell('Size', 'num', fmtBytes(e.file_size)),
      cell('Created', 'nowrap', fmtTime(e.createdAt)),
      cell('Completed', 'nowrap', fmtTime(e.completedAt)),
      cell('', '', actions));
  }

  function draw(list) {
    const { data, meta } = list;
    const current = `${state.sort_by}:${state.sort_order}`;
    if (!SORTS.some(([v]) => v === current)) {
      sort.append(h('option', { value: current }, `${state.sort_by} ${state.sort_order === 'asc' ? 'ascending' : 'descending'}`));
    }
    sort.value = current;
    if (!data.length) {
      fill(tableWrap, h('p', { class: 'empty' }, state.search ? 'No export matches the search.' : 'No exports yet. Create one with “New export”.'));
    } else {
      fill(tableWrap, h('table', { class: 'cards' },
        h('caption', { class: 'sr-only' }, 'Exports'),
        h('thead', {}, h('tr', {},
          sortButton('Status', 'status'),
          h('th', { scope: 'col' }, 'Schema'),
          sortButton('Date range', 'start_date'),
          h('th', { scope: 'col', class: 'num' }, 'Rows'),
          h('th', { scope: 'col', class: 'num' }, 'Size'),
          sortButton('Created (UTC)', 'createdAt'),
          h('th', { scope: 'col' }, 'Completed (UTC)'),
          h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
        h('tbody', {}, data.map(row))));
    }
    const last = Math.max(meta.totalPages, 1);
    fill(pager,
      h('span', { class: 'muted' }, `${fmtNum(meta.total)} export${meta.total === 1 ? '' : 's'} · page ${meta.page} of ${last}`),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary small', disabled: meta.page <= 1, onclick: () => { state.page--; load(true); } }, '← Previous'),
        h('button', { type: 'button', class: 'secondary small', disabled: meta.page >= last, onclick: () => { state.page++; load(true); } }, 'Next →')));
  }

  async function load(userAction = false) {
    clearTimeout(timer);
    timer = null;
    if (userAction) delay = FIRST_POLL_MS;
    const mine = ++seq;
    try {
      const list = await api('GET', '/v1/exports', { query: { ...state, include: 'schema' } });
      if (!alive || mine !== seq) return;
      status.textContent = '';
      draw(list);
      const running = list.data.filter((e) => RUNNING.has(e.status)).length;
      if (running) {
        polling.textContent = `${running} running · refreshing`;
        timer = setTimeout(load, delay);
        delay = Math.min(Math.round(delay * 1.5), MAX_POLL_MS);
      } else {
        polling.textContent = '';
        delay = FIRST_POLL_MS;
      }
    } catch (e) {
      if (!alive || mine !== seq) return;
      status.textContent = e.message;
      polling.textContent = '';
    }
  }

  async function download(e) {
    try {
      const { url } = await api('GET', `/v1/exports/${e.id}/download`);
      location.assign(url);
    } catch (err) {
      status.textContent = err.message;
    }
  }

  async function remove(e) {
    const name = e.schema ? e.schema.name : e.schema_id;
    if (!await confirmDialog(`Delete the export of ${name} (${fmtDate(e.start_date)} → ${fmtDate(e.end_date)}) and its file? Download links already handed out stop working.`)) return;
    try {
      await api('DELETE', `/v1/exports/${e.id}`);
      toast('Export deleted');
      load(true);
    } catch (err) {
      status.textContent = err.message;
    }
  }

  load(true);
  return () => { alive = false; clearTimeout(timer); clearTimeout(debounce); };
}
