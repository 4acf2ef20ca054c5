/**
 * The console's static assets: the module the vault serves is what console/src builds to, within
 * a size budget, with no inline code, no third-party origin, no browser storage, and the strict
 * security headers on every console response.
 */
import { gzipSync } from 'node:zlib';
import { CONSOLE_ASSETS } from '../../../lambda/core/console/assets.generated';
import { CONSOLE_CSP, serveConsole } from '../../../lambda/core/console/console-routes';
import { buildConsoleAssets } from '../../../scripts/build-console';

/** Bytes, raw and gzip; uPlot alone is ~51 KB minified. */
const BUDGET = {
  'app.js': { raw: 90_000, gzip: 32_000 },
  'app.css': { raw: 10_000, gzip: 3_000 },
  'index.html': { raw: 10_000, gzip: 3_000 },
} as const;

const get = (path: string, method = 'GET') => serveConsole({ method, path, headers: {} });

test('the served module is up to date with console/src (run `npm run build:console`)', () => {
  const built = buildConsoleAssets();
  for (const name of Object.keys(built) as (keyof typeof built)[]) {
    expect({ name, sha256: CONSOLE_ASSETS[name].sha256 }).toEqual({ name, sha256: built[name].sha256 });
    expect(CONSOLE_ASSETS[name].body).toBe(built[name].body);
  }
  expect(Object.keys(CONSOLE_ASSETS).sort()).toEqual(Object.keys(built).sort());
});

test.each(Object.entries(BUDGET))('%s stays within its size budget', (name, budget) => {
  const body = CONSOLE_ASSETS[name as keyof typeof CONSOLE_ASSETS].body;
  const raw = Buffer.byteLength(body);
  const gzip = gzipSync(body).length;
  console.log(`console asset ${name}: ${raw} bytes, ${gzip} gzip`);
  expect(raw).toBeLessThanOrEqual(budget.raw);
  expect(gzip).toBeLessThanOrEqual(budget.gzip);
});

test('the page has no inline script, no inline style, no event-handler attribute, no external origin', () => {
  const html = CONSOLE_ASSETS['index.html'].body;
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
  expect(scripts.length).toBe(1);
  for (const [, attrs, body] of scripts) {
    expect(attrs).toMatch(/\bsrc="app\.js"/);
    expect(body.trim()).toBe('');
  }
  expect(html).not.toMatch(/<style\b/i);
  expect(html).not.toMatch(/\sstyle\s*=/i);
  expect(html).not.toMatch(/\son[a-z]+\s*=/i);
  expect(html).not.toMatch(/javascript:/i);
  for (const body of [html, CONSOLE_ASSETS['app.css'].body]) expect(body).not.toMatch(/(https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}/i);
  expect(CONSOLE_ASSETS['app.css'].body).not.toMatch(/@import|url\(\s*["']?(https?:|\/\/)/i);
});

test('the script never touches browser storage or cookies, never parses HTML strings, never loads code', () => {
  const js = CONSOLE_ASSETS['app.js'].body;
  for (const banned of ['localStorage', 'sessionStorage', 'indexedDB', 'document.cookie', 'innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'eval(', 'new Function', 'importScripts', 'import(']) {
    expect({ banned, found: js.includes(banned) }).toEqual({ banned, found: false });
  }
  // The only absolute URLs are XML namespace names (SVG), which are never fetched.
  const urls = [...js.matchAll(/https?:\/\/[^\s"'`)]+/g)].map((m) => m[0]);
  expect(urls.every((u) => u.startsWith('http://www.w3.org/'))).toBe(true);
});

test('every console response carries the strict CSP and security headers', () => {
  expect(CONSOLE_CSP).toContain("script-src 'self'");
  expect(CONSOLE_CSP).toContain("style-src 'self'");
  expect(CONSOLE_CSP).not.toMatch(/unsafe-inline|unsafe-eval|\*|https?:/);
  for (const [path, status, type] of [
    ['/console/', 200, 'text/html; charset=utf-8'],
    ['/console/app.js', 200, 'text/javascript; charset=utf-8'],
    ['/console/app.css', 200, 'text/css; charset=utf-8'],
    ['/console/missing.js', 404, 'text/plain; charset=utf-8'],
    ['/console/../vault/tokens', 404, 'text/plain; charset=utf-8'],
  ] as const) {
    const res = get(path)!;
    expect({ path, status: res.status, type: res.headers['content-type'] }).toEqual({ path, status, type });
    expect(res.headers).toMatchObject({
      'content-security-policy': CONSOLE_CSP,
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
      'cross-origin-opener-policy': 'same-origin',
    });
    expect(res.headers).not.toHaveProperty('set-cookie');
  }
  expect(get('/console/index.html')!.headers['cache-control']).toBe('no-store');
});

test('/console redirects to /console/ relatively (works under an API Gateway stage); only GET and HEAD', () => {
  expect(get('/console')).toMatchObject({ status: 308, headers: { location: 'console/' } });
  expect(get('/console/', 'HEAD')).toMatchObject({ status: 200, body: '' });
  expect(get('/console/', 'POST')).toMatchObject({ status: 405 });
  expect(get('/consoles')).toBeUndefined();
  expect(get('/vault/tokens')).toBeUndefined();
  expect(get('/console/toString')!.status).toBe(404);
  expect(get('/console/__proto__')!.status).toBe(404);
});
