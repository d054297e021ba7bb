// End-to-end tests of the console (/) and Swagger UI (/docs) in headless Chromium, against
// the real binary: `target/debug/exports-api serve --demo` on a free port, a temporary data
// folder and EXPORTS_API_KEY. Run: `node tests/e2e/run.mjs` (after `npm ci` here and
// `cargo build`); `.ci/e2e.sh` does all of it. Screenshots go to target/e2e-screenshots/.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BINARY = process.env.EXPORTS_API_BIN || join(ROOT, 'target/debug/exports-api');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOTS = join(ROOT, 'target/e2e-screenshots');
const KEY = `e2e-key-${process.pid}-${Date.now()}`;
const DEMO_SCHEMA = '019760a0-0001-7000-8000-000000000001';
const NARROW = { width: 400, height: 860 };
const WIDE = { width: 1280, height: 860 };

let server;
let serverLog = '';
let dataDir;
let base;
let DEMO_KEY; // printed by `serve --demo` at its first start: team `demo`, which owns the demo data
let browser;

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => ok(port)); });
  });
}

/** Polls `check` until it returns a truthy value or `ms` pass. */
async function pollUntil(what, ms, check) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}\n${serverLog.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function apiJson(method, path, body) {
  const r = await fetch(base + path, {
    method,
    headers: { 'x-api-key': DEMO_KEY, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, body: await r.json() };
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'exports-e2e-'));
  mkdirSync(SHOTS, { recursive: true });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(BINARY, ['serve', '--demo', '--listen', `127.0.0.1:${port}`, '--data-dir', join(dataDir, 'data'), '--workers', '2'], {
    env: { ...process.env, EXPORTS_API_KEY: KEY, RUST_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout.on('data', (d) => { serverLog += d; });
  server.stderr.on('data', (d) => { serverLog += d; });
  await pollUntil('the server to answer /healthz', 30000, async () => {
    if (server.exitCode !== null) throw new Error(`the server exited with ${server.exitCode}`);
    return (await fetch(`${base}/healthz`)).ok;
  });
  DEMO_KEY = (await pollUntil('the demo key on stdout', 10000, () => /export KEY=(\S+)/.exec(serverLog)))[1];
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const gone = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await gone;
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** A fresh page (own sessionStorage) of the given size, failing the test on a page error. */
async function newPage(viewport = WIDE) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/status of (400|401|404|409)/.test(m.text())) problems.push(`console: ${m.text()}`); });
  page.problems = problems;
  return page;
}

async function signIn(page, key = DEMO_KEY) {
  await page.goto(`${base}/`);
  const input = page.getByRole('textbox', { name: 'API key' });
  await input.waitFor();
  // the key field has the focus: typing and Enter is enough (keyboard use)
  await page.keyboard.type(key);
  await page.keyboard.press('Enter');
}

/** No horizontal page scroll, and a screenshot named `name`. */
async function checkLayout(page, name) {
  const { scroll, client } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
  }));
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  assert.ok(scroll <= client, `${name}: the page scrolls sideways (${scroll} > ${client})`);
}

describe('console', () => {
  test('a key is checked, its team shown, kept per tab and forgotten on request', async () => {
    const page = await newPage(NARROW);
    await page.goto(`${base}/`);
    await checkLayout(page, 'login-400');
    await signIn(page, 'not-a-valid-key');
    await page.getByText('This key was not accepted').waitFor();
    await page.getByRole('textbox', { name: 'API key' }).fill('');
    // EXPORTS_API_KEY belongs to team `default`
    await signIn(page, KEY);
    await page.locator('#team-name', { hasText: 'default' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('exports-api.key')), KEY, 'the key is in sessionStorage');
    assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
    // a reload keeps the key (same tab)
    await page.reload();
    await page.locator('#team-name', { hasText: 'default' }).waitFor();
    await page.getByRole('button', { name: 'Forget key' }).click();
    await page.getByRole('textbox', { name: 'API key' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    // the demo key: team `demo`
    await signIn(page);
    await page.locator('#team-name', { hasText: 'demo' }).waitFor();
    // another tab (a new browser context) has no key
    const other = await newPage(NARROW);
    await other.goto(`${base}/`);
    await other.getByRole('textbox', { name: 'API key' }).waitFor();
    await other.context().close();
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('create an export, see it COMPLETED, download the same bytes as the API, delete it', async () => {
    const page = await newPage(WIDE);
    await signIn(page);
    await page.getByRole('link', { name: 'New export' }).first().click();
    await page.getByLabel('Schema').selectOption({ label: 'Invoices' });
    await page.getByLabel('From').fill('2024-01-01');
    await page.getByLabel('To').fill('2024-01-31');
    await page.getByLabel('Rows').selectOption('line_items');
    await page.getByLabel('Delimiter').selectOption(';');
    await page.getByLabel('Byte-order mark').check();
    const created = page.waitForResponse((r) => r.url().endsWith('/v1/exports') && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Create export' }).click();
    const resp = await created;
    assert.equal(resp.status(), 201);
    const exp = await resp.json();
    assert.equal(exp.expand_array, 'line_items');
    assert.equal(exp.options.delimiter, ';');
    assert.equal(exp.options.bom, true);
    const row = page.locator(`tr[data-export-id="${exp.id}"]`);
    // the page refreshes running exports by itself: no reload here
    await row.locator('.badge', { hasText: 'COMPLETED' }).waitFor({ timeout: 30000 });
    const api = await apiJson('GET', `/v1/exports/${exp.id}`);
    assert.equal(api.body.status, 'COMPLETED');
    await assert.doesNotReject(row.getByText(api.body.row_count.toLocaleString('en'), { exact: true }).waitFor());
    await checkLayout(page, 'exports-1280');
    await page.setViewportSize(NARROW);
    await checkLayout(page, 'exports-400');
    await page.setViewportSize(WIDE);

    const downloading = page.waitForEvent('download');
    await row.getByRole('button', { name: 'Download' }).click();
    const download = await downloading;
    const got = readFileSync(await download.path());
    const { body: link } = await apiJson('GET', `/v1/exports/${exp.id}/download`);
    const want = Buffer.from(await (await fetch(link.url)).arrayBuffer());
    assert.equal(got.length, api.body.file_size);
    assert.ok(got.equals(want), 'the browser downloaded the bytes the API serves');
    assert.equal(download.suggestedFilename(), 'invoices_2024-01-01_2024-01-31.csv');

    await row.getByRole('button', { name: 'Delete' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    await page.screenshot({ path: join(SHOTS, 'delete-confirm-1280.png') });
    // cancelling keeps it
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    assert.equal((await apiJson('GET', `/v1/exports/${exp.id}`)).status, 200);
    await row.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await row.waitFor({ state: 'detached' });
    assert.equal((await apiJson('GET', `/v1/exports/${exp.id}`)).status, 404);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('the list searches and sorts; FAILED errors in full, progress bars and refresh of running rows', async () => {
    const page = await newPage(WIDE);
    await signIn(page);
    await page.locator('#team-name', { hasText: 'demo' }).waitFor();
    const { body: made } = await apiJson('POST', '/v1/exports', { schema_id: DEMO_SCHEMA, start_date: '2024-02-01', end_date: '2024-02-29', expand_array: 'tags' });
    await pollUntil('the export to finish', 30000, async () => (await apiJson('GET', `/v1/exports/${made.id}`)).body.status === 'COMPLETED');
    const searched = page.waitForResponse((r) => r.url().includes('search=tags'));
    await page.getByLabel('Search').fill('tags');
    await searched;
    await page.locator(`tr[data-export-id="${made.id}"]`).waitFor();
    const sorted = page.waitForResponse((r) => r.url().includes('sort_by=status'));
    await page.getByRole('button', { name: /^Status/ }).click();
    const q = new URL((await sorted).url()).searchParams;
    assert.equal(q.get('sort_order'), 'asc');
    assert.equal(q.get('search'), 'tags');
    assert.equal(await page.getByLabel('Sort').inputValue(), 'status:asc');

    // A FAILED export and a running one with progress figures (which the API does not send
    // yet) cannot be made on demand: the list answer is amended in the browser.
    const error = 'disk full: the export needed more space than the disk had left. Free some space (or delete old exports) and create it again.';
    let lists = 0;
    await page.route(/\/v1\/exports\?/, async (route) => {
      const resp = await route.fetch();
      const list = await resp.json();
      lists++;
      const base0 = list.data[0];
      const running = lists < 3;
      list.data.unshift(
        { ...base0, id: '00000000-0000-7000-8000-00000000fa11', status: 'FAILED', error, row_count: null, file_size: null, completedAt: null },
        { ...base0, id: '00000000-0000-7000-8000-0000000000a1', status: running ? 'PROCESSING' : 'COMPLETED', progress: running ? { results_done: 40, results_total: 100, percent: 40 } : { results_done: 100, results_total: 100, percent: 100 } });
      await route.fulfill({ response: resp, json: list });
    });
    await page.getByRole('button', { name: 'Refresh' }).click();
    const failed = page.locator('tr[data-export-id="00000000-0000-7000-8000-00000000fa11"]');
    await failed.getByText(error, { exact: true }).waitFor();
    const bar = page.locator('tr[data-export-id="00000000-0000-7000-8000-0000000000a1"] progress');
    await bar.waitFor();
    assert.equal(await bar.getAttribute('value'), '40');
    await page.locator('#export-polling', { hasText: 'refreshing' }).waitFor();
    await page.screenshot({ path: join(SHOTS, 'exports-failed-progress-1280.png'), fullPage: true });
    // the running row is refreshed without a click, until nothing runs
    await page.locator('tr[data-export-id="00000000-0000-7000-8000-0000000000a1"] .badge', { hasText: 'COMPLETED' }).waitFor();
    const settled = lists;
    assert.ok(settled >= 3);
    await page.setViewportSize(NARROW);
    await checkLayout(page, 'exports-failed-progress-400');
    // nothing runs: the page says it stopped refreshing
    assert.equal(await page.locator('#export-polling').textContent(), '');
    await page.unroute(/\/v1\/exports\?/);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('an Excel export in a time zone: the options it does not use are off, the file is .xlsx', async () => {
    const page = await newPage(WIDE);
    await signIn(page);
    await page.getByRole('link', { name: 'New export' }).first().click();
    await page.getByLabel('Schema').selectOption({ label: 'Invoices' });
    await page.getByLabel('From').fill('2024-01-01');
    await page.getByLabel('To').fill('2024-01-31');
    await page.getByLabel('Format').selectOption('xlsx');
    assert.equal(await page.getByLabel('Delimiter').isDisabled(), true);
    assert.equal(await page.getByLabel('Gzip').isDisabled(), true);
    await page.getByLabel('Time zone').fill('Nowhere/City');
    const refused = page.waitForResponse((r) => r.url().endsWith('/v1/exports') && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Create export' }).click();
    assert.equal((await refused).status(), 400);
    await page.locator('#timezone-error').filter({ hasText: 'options.timezone' }).waitFor();
    await page.getByLabel('Time zone').fill('Europe/Paris');
    const created = page.waitForResponse((r) => r.url().endsWith('/v1/exports') && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Create export' }).click();
    const resp = await created;
    assert.equal(resp.status(), 201);
    const exp = await resp.json();
    assert.equal(exp.format, 'xlsx');
    assert.equal(exp.options.timezone, 'Europe/Paris');
    const row = page.locator(`tr[data-export-id="${exp.id}"]`);
    await row.locator('.badge', { hasText: 'COMPLETED' }).waitFor({ timeout: 30000 });
    const downloading = page.waitForEvent('download');
    await row.getByRole('button', { name: 'Download' }).click();
    const download = await downloading;
    assert.equal(download.suggestedFilename(), 'invoices_2024-01-01_2024-01-31.xlsx');
    const got = readFileSync(await download.path());
    assert.equal(got.subarray(0, 2).toString(), 'PK', 'a zip container');
    await checkLayout(page, 'exports-xlsx-1280');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('a 400 is shown next to the field it names', async () => {
    const page = await newPage(NARROW);
    await signIn(page);
    await page.getByRole('link', { name: 'New export' }).first().click();
    await page.getByLabel('Schema').selectOption({ label: 'Invoices' });
    await page.getByLabel('To').fill('2024-01-31');
    await page.getByRole('button', { name: 'Create export' }).click();
    const startError = page.locator('#start_date-error');
    await startError.filter({ hasText: 'start_date' }).waitFor();
    assert.equal(await page.getByLabel('From').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.locator('#end_date-error').textContent(), '');
    // start after end: the API names start_date first
    await page.getByLabel('From').fill('2024-02-01');
    await page.getByRole('button', { name: 'Create export' }).click();
    await startError.filter({ hasText: 'after end_date' }).waitFor();
    await checkLayout(page, 'new-export-error-400');
    // no schema chosen: the message lands beside the schema list
    await page.getByLabel('Schema').selectOption('');
    await page.getByRole('button', { name: 'Create export' }).click();
    await page.locator('#schema_id-error').filter({ hasText: 'schema_id' }).waitFor();
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('create a schema from JSON, upload NDJSON (file picker and drop), a bad file is refused', async () => {
    const page = await newPage(WIDE);
    await signIn(page);
    await page.getByRole('link', { name: 'Schemas' }).click();
    await page.getByRole('link', { name: 'New schema' }).click();
    const name = `Receipts ${Date.now()}`;
    await page.getByLabel('Schema as JSON').fill(JSON.stringify({
      name, description: 'from the e2e test',
      schema: { fields: [{ key: 'merchant', type: 'string', label: 'Merchant' },
        { key: 'items', type: 'array', fields: [{ key: 'name', type: 'string' }, { key: 'price', type: 'number' }] }] },
    }));
    // a bad body first: the server's message beside the JSON
    const text = await page.getByLabel('Schema as JSON').inputValue();
    await page.getByLabel('Schema as JSON').fill(text.replace('"string"', '"strnig"'));
    await page.getByRole('button', { name: 'Create schema' }).click();
    await page.locator('#schema-json-error').filter({ hasText: 'type' }).waitFor();
    await page.getByLabel('Schema as JSON').fill(text);
    await page.getByRole('button', { name: 'Create schema' }).click();
    await page.getByRole('heading', { name }).waitFor();
    await page.locator('.tree').getByText('price').waitFor();
    const id = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);

    const good = '{"extraction":{"merchant":"Café \\"Zur Post\\"","items":[{"name":"tea","price":2.5}]},"file_name":"r1.pdf","createdAt":"2024-03-01T10:00:00Z"}\n'
      + '{"extraction":{"merchant":"=cmd","items":[]},"file_name":"r2.pdf","createdAt":"2024-03-02T10:00:00Z"}\n';
    await page.getByLabel('choose a file').setInputFiles({ name: 'receipts.ndjson', mimeType: 'application/x-ndjson', buffer: Buffer.from(good) });
    await page.getByText('2 results added from receipts.ndjson').waitFor();
    await page.locator('#results-count', { hasText: '2 results' }).waitFor();
    await page.locator('#results-table').getByText('r1.pdf').waitFor();

    // drag and drop a third line
    await page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['{"extraction":{"merchant":"drop"},"file_name":"r3.pdf"}\n'], 'dropped.ndjson', { type: 'application/x-ndjson' }));
      const zone = document.getElementById('drop-zone');
      zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await page.getByText('1 result added from dropped.ndjson').waitFor();
    await page.locator('#results-count', { hasText: '3 results' }).waitFor();

    const bad = '{"extraction":{"merchant":"ok"}}\n{"extraction": "not an object"}\n';
    await page.getByLabel('choose a file').setInputFiles({ name: 'bad.ndjson', mimeType: 'application/x-ndjson', buffer: Buffer.from(bad) });
    const err = page.locator('#upload-error');
    await err.filter({ hasText: 'bad.ndjson was not stored' }).waitFor();
    assert.match(await err.textContent(), /line 2/);
    const { body: list } = await apiJson('GET', `/v1/results?schema_id=${id}`);
    assert.equal(list.meta.total, 3, 'the bad file stored nothing');
    await checkLayout(page, 'schema-1280');
    await page.setViewportSize(NARROW);
    await checkLayout(page, 'schema-400');
    await page.goto(`${base}/#/schemas/new`);
    await page.getByLabel('Schema as JSON').waitFor();
    await checkLayout(page, 'schema-new-400');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test('every page fits 400 px without sideways scrolling', async () => {
    const page = await newPage(NARROW);
    await signIn(page);
    await page.locator('#team-name', { hasText: 'demo' }).waitFor();
    for (const [hash, ready, name] of [
      ['#/exports', '.pager', 'exports-list-400'],
      ['#/new', '#new-export-form', 'new-export-400'],
      [`#/schemas/${DEMO_SCHEMA}`, '#results-table', 'schema-demo-400'],
    ]) {
      await page.goto(`${base}/${hash}`);
      await page.locator(ready).waitFor();
      await checkLayout(page, name);
    }
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });
});

describe('Swagger UI', () => {
  test('authorizes with x-api-key and "Try it out" on GET /v1/exports answers 200', async () => {
    const page = await newPage(WIDE);
    await page.goto(`${base}/`);
    await page.getByRole('link', { name: 'API docs' }).click();
    await page.waitForURL(/\/docs/);
    await page.locator('button.authorize').first().click();
    const modal = page.locator('.modal-ux');
    await modal.getByLabel('Value:').fill(KEY);
    await modal.locator('button.modal-btn.authorize').click();
    await modal.locator('button.btn-done').click();
    const op = page.locator('#operations-Exports-get_v1_exports');
    await op.locator('.opblock-summary-control').click();
    await op.getByRole('button', { name: 'Try it out' }).click();
    const answered = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/exports' && r.request().method() === 'GET');
    await op.getByRole('button', { name: 'Execute' }).click();
    const r = await answered;
    assert.equal(r.status(), 200);
    assert.equal(r.request().headers()['x-api-key'], KEY);
    await op.locator('.live-responses-table .response-col_status', { hasText: '200' }).waitFor();
    await page.screenshot({ path: join(SHOTS, 'docs-1280.png') });
    await page.context().close();
  });
});

// a file written at the end says which screenshots this run made
after(() => writeFileSync(join(SHOTS, 'README.txt'), `Screenshots of the last e2e run (${new Date().toISOString()}), one per page and width.\n`));
