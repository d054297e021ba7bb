// New export: a schema, a date range, expand_array among the schema's array fields, the file
// format, a time zone and the format's options; a 400 is shown next to the field it names.
import { api } from './api.js';
import { clearErrors, showError } from './errors.js';
import { field, fill, h, toast } from './dom.js';

export const title = 'New export';

/** Every schema of the team (pages of 100), by name. */
export async function allSchemas() {
  const out = [];
  for (let page = 1; ; page++) {
    const { data, meta } = await api('GET', '/v1/schemas', { query: { page, limit: 100, sort_by: 'name', sort_order: 'asc' } });
    out.push(...data);
    if (page >= meta.totalPages) return out;
  }
}

export function render(root, params) {
  let alive = true;
  const top = h('p', { class: 'error form-error', role: 'alert', tabindex: -1 });
  const schema = h('select', { id: 'schema_id', name: 'schema_id' }, h('option', { value: '' }, 'Loading…'));
  const start = h('input', { type: 'date', id: 'start_date', name: 'start_date' });
  const end = h('input', { type: 'date', id: 'end_date', name: 'end_date' });
  const expand = h('select', { id: 'expand_array', name: 'expand_array' });
  const format = h('select', { id: 'format', name: 'format' },
    h('option', { value: 'csv' }, 'CSV (.csv)'),
    h('option', { value: 'xlsx' }, 'Excel workbook (.xlsx)'),
    h('option', { value: 'jsonl' }, 'JSON Lines (.jsonl)'));
  const browserZone = (Intl.DateTimeFormat().resolvedOptions().timeZone) || 'UTC';
  const timezone = h('input', { type: 'text', id: 'timezone', name: 'timezone', placeholder: browserZone === 'UTC' ? 'UTC' : `UTC (e.g. ${browserZone})`, autocomplete: 'off', spellcheck: false });
  const delimiter = h('select', { id: 'delimiter' },
    [[',', 'Comma ,'], [';', 'Semicolon ;'], ['\t', 'Tab'], ['|', 'Pipe |']].map(([v, l]) => h('option', { value: v }, l)));
  const header = h('select', { id: 'header' },
    h('option', { value: 'key' }, 'Keys (billing_address.city)'),
    h('option', { value: 'label' }, 'Labels (Billing address / City)'));
  const bom = h('input', { type: 'checkbox', id: 'bom' });
  const guard = h('input', { type: 'checkbox', id: 'formula_guard', checked: true });
  const gzip = h('input', { type: 'checkbox', id: 'gzip' });
  const submit = h('button', { type: 'submit' }, 'Create export');

  const f = {
    schema_id: field('Schema', schema),
    start_date: field('From', start, 'Results created on or after this day (UTC).'),
    end_date: field('To', end, 'Results created up to the end of this day (UTC).'),
    expand_array: field('Rows', expand, 'One row per result, or one row per item of an array field.'),
    format: field('Format', format, 'Excel keeps numbers, dates and leading zeros; JSON Lines keeps every JSON type.'),
    'options.timezone': field('Time zone', timezone, 'An IANA name such as Europe/Paris: createdAt and date-times are written in it. Empty: UTC.'),
    'options.delimiter': field('Delimiter', delimiter),
    'options.header': field('Header', header),
  };
  const check = (control, label, help) => {
    const error = h('p', { class: 'error', id: `${control.id}-error`, role: 'alert' });
    control.setAttribute('aria-describedby', `${control.id}-error`);
    return { control, error, wrap: h('div', {}, h('div', { class: 'check' }, control, h('label', { for: control.id }, label), help ? h('span', { class: 'muted' }, `— ${help}`) : null), error) };
  };
  const checks = {
    'options.bom': check(bom, 'Byte-order mark', 'Excel on Windows needs it (with ; as delimiter)'),
    'options.formula_guard': check(guard, 'Formula guard', "prefix ' to text starting with = + - @"),
    'options.gzip': check(gzip, 'Gzip', 'a .csv.gz file'),
  };
  const fields = { ...Object.fromEntries(Object.entries(f).map(([k, v]) => [k, { control: v.wrap.querySelector('input,select'), error: v.error }])), ...checks };

  let schemas = [];
  function fillExpand() {
    const s = schemas.find((x) => x.id === schema.value);
    const arrays = s ? s.schema.fields.filter((x) => x.type === 'array') : [];
    fill(expand, h('option', { value: '' }, 'One row per result'),
      arrays.map((a) => h('option', { value: a.key }, `One row per item of ${a.label ? `${a.label} (${a.key})` : a.key}`)));
    expand.disabled = arrays.length === 0;
  }
  schema.addEventListener('change', fillExpand);

  // the options a format does not use (formats.md) are disabled and not sent
  const unused = { csv: [], jsonl: ['options.delimiter', 'options.bom', 'options.formula_guard'], xlsx: ['options.delimiter', 'options.bom', 'options.gzip'] };
  const applies = (name) => !unused[format.value].includes(name);
  function fitFormat() {
    for (const name of ['options.delimiter', 'options.bom', 'options.formula_guard', 'options.gzip']) {
      fields[name].control.disabled = !applies(name);
    }
  }
  format.addEventListener('change', fitFormat);

  const form = h('form', { novalidate: true, id: 'new-export-form' },
    top,
    f.schema_id.wrap,
    h('div', { class: 'grid2' }, f.start_date.wrap, f.end_date.wrap),
    f.expand_array.wrap,
    h('div', { class: 'grid2' }, f.format.wrap, f['options.timezone'].wrap),
    h('fieldset', {}, h('legend', {}, 'File options'),
      h('div', { class: 'grid2' }, f['options.delimiter'].wrap, f['options.header'].wrap),
      checks['options.bom'].wrap, checks['options.formula_guard'].wrap, checks['options.gzip'].wrap),
    h('div', { class: 'actions' }, submit, h('a', { href: '#/exports' }, 'Cancel')));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(fields, top);
    const options = { delimiter: delimiter.value, header: header.value, bom: bom.checked, formula_guard: guard.checked, gzip: gzip.checked };
    for (const k of Object.keys(options)) if (!applies(`options.${k}`)) delete options[k];
    if (timezone.value.trim()) options.timezone = timezone.value.trim();
    const body = { schema_id: schema.value, start_date: start.value, end_date: end.value, format: format.value, options };
    if (expand.value) body.expand_array = expand.value;
    submit.disabled = true;
    try {
      await api('POST', '/v1/exports', { json: body });
      toast('Export created');
      location.hash = '#/exports';
    } catch (e) {
      if (alive) showError(e.message, fields, top);
    } finally {
      submit.disabled = false;
    }
  });

  fill(root, h('div', { class: 'card narrow' }, h('h1', {}, 'New export'), form));

  allSchemas().then((list) => {
    if (!alive) return;
    schemas = list;
    fill(schema, h('option', { value: '' }, list.length ? 'Choose a schema…' : 'No schemas yet'),
      list.map((s) => h('option', { value: s.id }, s.name)));
    if (params[0] && list.some((s) => s.id === params[0])) schema.value = params[0];
    else if (list.length === 1) schema.value = list[0].id;
    fillExpand();
  }).catch((e) => { if (alive) top.textContent = e.message; });

  return () => { alive = false; };
}
