// Building DOM without innerHTML: every text goes through textContent / attributes.

/** h('a', {href: '#'}, 'text', child, ...): an element; `on*` attributes become listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function fmtNum(n) {
  return n === null || n === undefined ? '—' : Number(n).toLocaleString('en');
}

/** "2024-01-31T12:00:00.000Z" -> "2024-01-31 12:00:00" (UTC, like the API). */
export function fmtTime(s) {
  if (!s) return '—';
  return s.replace('T', ' ').replace(/\.\d+Z$/, '').replace(/Z$/, '');
}

/** The date part of an ISO time. */
export function fmtDate(s) {
  return s ? s.slice(0, 10) : '—';
}

let toastTimer;
export function toast(text) {
  const el = document.getElementById('toast');
  el.textContent = text;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.textContent = ''; }, 4000);
}

/** Asks for confirmation in the page's <dialog>; resolves true when confirmed. */
export function confirmDialog(text, okLabel = 'Delete') {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = okLabel;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
  });
}

/** A labelled form field: {label, id, control, help}; returns {wrap, error}. */
export function field(label, control, help) {
  const error = h('p', { class: 'error', id: `${control.id}-error`, role: 'alert' });
  control.setAttribute('aria-describedby', `${control.id}-error${help ? ` ${control.id}-help` : ''}`);
  const wrap = h('div', { class: 'field' },
    h('label', { for: control.id }, label),
    control,
    help ? h('p', { class: 'help', id: `${control.id}-help` }, help) : null,
    error);
  return { wrap, error };
}
