/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The tenant console in a real browser: Debian's Chromium driven by puppeteer-core against the
 * local gateway (moto backend) with fake upstreams. Sign in, create a token with a budget, send
 * requests with the official OpenAI SDK, see them on the timeline with cost and TTFT, hit the
 * budget and see the reason, rotate a provider key through the paste field, read the audit trail,
 * revoke the token. Every response the page receives is recorded and searched for the canary
 * provider key and the tokens. Screenshots go to docs/ with UPDATE_SCREENSHOTS=1. It never skips: no Chromium, no pass.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import puppeteer, { Browser, Page } from 'puppeteer-core';
import { LocalGateway, startLocalGateway } from '../../local/gateway';
import { canaryForms, makeCanary } from '../support/canary';
import { FakeProviders, startFakeProviders } from '../support/fake-providers';

const CHROMIUM = '/usr/bin/chromium';
// The README's screenshots are refreshed only on request (UPDATE_SCREENSHOTS=1), so a test run
// never modifies tracked files; otherwise they are still taken (the pages must render) into a temp dir.
const DOCS = process.env.UPDATE_SCREENSHOTS === '1' ? join(__dirname, '..', '..', 'docs') : mkdtempSync(join(tmpdir(), 'sr-console-shots-'));
const canary = makeCanary('console');
const rotatedCanary = makeCanary('rotated');

let fakes: FakeProviders;
let gw: LocalGateway;
let browser: Browser;
let page: Page;
let profile: string;
let adminToken: string;
/** Every response the page received: URL, status, body. */
const seen: { url: string; method: string; status: number; body: string }[] = [];
const consoleErrors: string[] = [];

async function adminCall(method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${gw.url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (see .ci/run)`);
  profile = mkdtempSync(join(tmpdir(), 'sr-chromium-'));
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true, // puppeteer passes --headless
    userDataDir: profile,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
    defaultViewport: { width: 1280, height: 800 },
  });
}

const text = (sel: string) => page.$eval(sel, (el) => (el as HTMLElement).innerText);
const visible = (sel: string) => page.waitForSelector(sel, { visible: true, timeout: 15_000 });
async function tab(name: string, ready: string): Promise<void> {
  await page.click(`#tab-${name}`);
  await visible(ready);
}

beforeAll(async () => {
  fakes = await startFakeProviders();
  fakes.setKey('openai', canary);
  fakes.setKey('anthropic', canary);
  gw = await startLocalGateway({
    port: 0,
    providers: { openai: { kind: 'openai', baseUrl: fakes.openai.baseUrl }, anthropic: { kind: 'anthropic', baseUrl: fakes.anthropic.baseUrl } },
    log: { info: () => undefined, warn: () => undefined, error: (m, f) => console.error(m, f) },
  });
  const created = await adminCall('POST', '/admin/tenants', {
    tenantId: 'acme',
    policy: { monthlyBudgetUsd: 25, routes: { smart: [{ provider: 'openai', model: 'gpt-4o-mini' }, { provider: 'anthropic', model: 'claude-sonnet-4-5' }] } },
  });
  adminToken = created.token;
  for (const provider of ['openai', 'anthropic']) {
    const res = await fetch(`${gw.url}/vault/secrets`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ provider, apiKey: canary }),
    });
    expect(res.status).toBe(201);
  }
  browser = await launch();
  page = await browser.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warn') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  page.on('dialog', (d) => void d.accept());
  page.on('response', (res) => {
    const entry = { url: res.url(), method: res.request().method(), status: res.status(), body: '' };
    seen.push(entry);
    if (res.status() >= 300 && res.status() < 400) return; // redirects have no readable body
    void res.text().then(
      (b) => (entry.body = b),
      () => (entry.body = '<unreadable>'),
    );
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await gw?.stop();
  await fakes?.close();
});

test('sign in, create a token, see SDK traffic with cost and TTFT, hit the budget, rotate a key, revoke', async () => {
  // 1. The page: strict headers, then sign in with the tenant-admin token.
  const first = await page.goto(`${gw.url}/console`, { waitUntil: 'load' });
  expect(first?.status()).toBe(200);
  expect(first?.url()).toBe(`${gw.url}/console/`);
  expect(first?.headers()['content-security-policy']).toContain("script-src 'self'");
  await page.type('#admin-token', adminToken);
  await page.click('#signin-button');
  await visible('#app');
  expect(await page.$eval('#admin-token', (el) => (el as HTMLInputElement).value)).toBe('');
  expect(await text('#tenant-name')).toContain('acme');
  await visible('[data-metric="requests"]');

  // 2. Create an invoke token with a $0.01 monthly budget; it is shown once.
  await tab('tokens', '#token-form');
  await page.select('#t-role', 'invoke');
  await page.type('#t-label', 'sdk-app');
  await page.type('#t-budget', '0.01');
  await page.click('#create-token');
  await visible('#new-token');
  const invokeToken = await page.$eval('#new-token', (el) => (el as HTMLInputElement).value);
  expect(invokeToken).toMatch(/^sr_/);
  await page.waitForFunction(() => document.querySelectorAll('#token-list tbody tr').length === 2);
  await page.click('#token-done');
  await page.waitForSelector('#token-once', { hidden: true });
  const pageHoldsToken = await page.evaluate(
    (t) => document.documentElement.outerHTML.includes(t) || [...document.querySelectorAll('input')].some((i) => i.value.includes(t)),
    invokeToken,
  );
  expect(pageHoldsToken).toBe(false);

  // 3. The official OpenAI SDK: plain, streamed, and a fallback (openai 429 → anthropic).
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: invokeToken, maxRetries: 0 });
  await client.chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 16, messages: [{ role: 'user', content: 'hello' }] });
  for (let i = 0; i < 3; i++) {
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 16, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: `stream ${i}` }] });
    for await (const chunk of stream) void chunk;
  }
  fakes.script('openai', [{ kind: 'status', status: 429 }, { kind: 'status', status: 429 }, { kind: 'status', status: 429 }]);
  const fallback = await client.chat.completions.create({ model: 'smart', max_tokens: 16, stream: true, messages: [{ role: 'user', content: 'fallback' }] });
  for await (const chunk of fallback) void chunk;
  // 4. A request whose worst case exceeds the token's $0.01 budget is denied, with its reason.
  const denied = await client.chat.completions
    .create({ model: 'gpt-4o', max_tokens: 100_000, messages: [{ role: 'user', content: 'too expensive' }] })
    .then(() => undefined, (e: unknown) => e as { status?: number; code?: string });
  expect(denied).toMatchObject({ status: 429, code: 'budget_exceeded' });

  // 5. The timeline shows them: cost, TTFT, the fallback chain, the denial and its reason.
  await tab('timeline', '#filters');
  await page.click('#apply-filters');
  await page.waitForFunction(() => document.querySelectorAll('#requests tbody tr').length >= 6, { timeout: 15_000 });
  const rows = await page.$$eval('#requests tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.innerText)));
  const HEAD = await page.$$eval('#requests thead th', (ths) => ths.map((th) => th.textContent));
  const col = (name: string) => HEAD.indexOf(name);
  const ok = rows.filter((r) => r[col('Outcome')] === 'ok');
  expect(ok.length).toBe(5);
  for (const r of ok) expect(r[col('Cost')]).toMatch(/^\$0\.\d+$/);
  expect(ok.filter((r) => /^\d+ ms$/.test(r[col('TTFT')])).length).toBeGreaterThanOrEqual(4);
  expect(rows.some((r) => r[col('Fallback chain')].includes('openai/gpt-4o-mini 429 → anthropic/claude-sonnet-4-5 ok'))).toBe(true);
  const deniedRow = rows.find((r) => r[col('Outcome')] === 'denied');
  expect(deniedRow?.[col('Denial reason')]).toBe('budget_exceeded');
  expect(await page.$$eval('.chart-host canvas', (c) => c.length)).toBe(3);
  expect(await text('[data-metric="denied"] strong')).toBe('1');
  expect(await text('[data-metric="fallbacks"] strong')).toBe('1');
  expect(await text('[data-metric="budget"] strong')).toBe('$25.0000');
  await page.screenshot({ path: join(DOCS, 'console-timeline.png'), fullPage: true });

  // Filters: only the denial.
  await page.select('#f-outcome', 'denied');
  await page.click('#apply-filters');
  await page.waitForFunction(() => document.querySelectorAll('#requests tbody tr').length === 1);
  await page.select('#f-outcome', '');

  // Phone width: still one readable column, no horizontal page scroll.
  // (isMobile would reload the page, and a reload signs out: the token lives in memory only.)
  await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 2 });
  await page.click('#apply-filters');
  await page.waitForFunction(() => document.querySelectorAll('#requests tbody tr').length >= 6);
  expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1)).toBe(true);
  await page.screenshot({ path: join(DOCS, 'console-timeline-phone.png'), fullPage: false });
  await page.setViewport({ width: 1280, height: 800 });

  // 6. Provider secrets: version, fingerprint, last used; rotate through the paste field.
  await tab('secrets', '#secret-list table');
  const secretRows = await page.$$eval('#secret-list tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.innerText)));
  expect(secretRows.map((r) => r.slice(0, 3))).toEqual(expect.arrayContaining([['openai', 'default', '1'], ['anthropic', 'default', '1']]));
  expect(secretRows.find((r) => r[0] === 'openai')?.[6]).toMatch(/^\d{4}-\d{2}-\d{2} /);
  await page.type('input[data-secret="openai/default"]', rotatedCanary);
  await page.click('button[data-secret="openai/default"]');
  expect(await page.$eval('input[data-secret="openai/default"]', (el) => (el as HTMLInputElement).value)).toBe('');
  await page.waitForFunction(() => document.getElementById('status')?.textContent?.includes('version 2'));
  const rotated = await page.$$eval('#secret-list tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.innerText)));
  expect(rotated.find((r) => r[0] === 'openai')?.slice(0, 3)).toEqual(['openai', 'default', '2']);
  expect(rotated.find((r) => r[0] === 'openai')?.[5]).toMatch(/^\d{4}-/);
  await page.screenshot({ path: join(DOCS, 'console-secrets.png'), fullPage: true });

  // 7. Policy and limits; the audit trail with its verification.
  await tab('policy', '#policy-view table');
  expect(await text('#policy-view')).toContain('$25');
  await tab('audit', '#audit-list table');
  await page.waitForFunction(() => document.getElementById('audit-verification')?.textContent?.startsWith('Chain verified'));
  const types = await page.$$eval('#audit-list tbody tr td:nth-child(3)', (tds) => tds.map((td) => td.textContent));
  expect(types).toEqual(expect.arrayContaining(['tenant.created', 'secret.stored', 'token.created', 'secret.rotated']));
  await page.screenshot({ path: join(DOCS, 'console-audit.png'), fullPage: true });

  // 8. Revoke the token: the SDK is refused from then on, and the revocation is audited.
  await tab('tokens', '#token-list table');
  const tokenId = await page.$eval('#token-list tbody tr:nth-child(2) td', (td) => td.textContent);
  const invokeRow = await page.$$eval('#token-list tbody tr', (trs) => trs.map((tr) => tr.querySelector('td')?.textContent + ' ' + tr.querySelectorAll('td')[1]?.textContent));
  const invokeId = invokeRow.find((r) => r.endsWith(' invoke'))!.split(' ')[0];
  expect(tokenId).toBeTruthy();
  await page.screenshot({ path: join(DOCS, 'console-tokens.png'), fullPage: true });
  await page.click(`button[data-action="revoke"][data-token="${invokeId}"]`);
  await page.waitForFunction(() => document.querySelectorAll('#token-list tbody tr').length === 1);
  await expect(client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'after revoke' }] })).rejects.toMatchObject({ status: 401 });
  await tab('audit', '#audit-list table');
  await page.waitForFunction(() => [...document.querySelectorAll('#audit-list td')].some((td) => td.textContent === 'token.revoked'));

  // 9. What the page received: never the provider keys; the tokens only in the one creation response.
  await new Promise((r) => setTimeout(r, 200)); // let the last response bodies be read
  expect(seen.length).toBeGreaterThan(15);
  const forms = [...canaryForms(canary), ...canaryForms(rotatedCanary)];
  for (const r of seen) {
    expect({ url: r.url, unreadable: r.body === '<unreadable>' }).toEqual({ url: r.url, unreadable: false });
    for (const f of forms) expect({ url: r.url, leaks: r.body.includes(f) }).toEqual({ url: r.url, leaks: false });
    expect({ url: r.url, leaks: r.body.includes(adminToken) || r.url.includes(adminToken) }).toEqual({ url: r.url, leaks: false });
  }
  const carrying = seen.filter((r) => r.body.includes(invokeToken) || r.url.includes(invokeToken));
  expect(carrying.map((r) => `${r.method} ${new URL(r.url).pathname} ${r.status}`)).toEqual(['POST /vault/tokens 201']);
  // Only this origin (data: URLs are the browser's own date-picker icon, never fetched from a network).
  expect(seen.filter((r) => !r.url.startsWith(`${gw.url}/`) && !r.url.startsWith('data:')).map((r) => r.url)).toEqual([]);

  // No cookie, no storage, no CSP violation or script error.
  expect(await page.cookies()).toEqual([]);
  expect(await page.evaluate(() => [localStorage.length, sessionStorage.length])).toEqual([0, 0]);
  expect(consoleErrors).toEqual([]);
}, 180_000);
