/**
 * The local gateway's own HTTP handling (local/gateway.ts): bodies in one or many chunks, the
 * size cap (413), query strings reaching the apps (and unknown ones refused), a client that
 * closes mid-body, the request id on every answer and one log line per request.
 */
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import { connect } from 'node:net';
import { jsonLogger } from '../../lambda/core/logger';
import { LocalGateway, startLocalGateway } from '../../local/gateway';
import { FakeProviders, startFakeProviders } from '../support/fake-providers';
import { waitUntil } from '../support/wait';

let fakes: FakeProviders;
let gw: LocalGateway;
let invoke: string;
let adminToken: string;
const lines: Record<string, unknown>[] = [];
const MAX = 64 * 1024;

/** One raw request: the body is written in the given pieces (separate writes, separate chunks). */
function raw(method: string, path: string, pieces: string[], headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const url = new URL(path, gw.url);
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    const write = (i: number): void => {
      if (i === pieces.length) return void req.end();
      req.write(pieces[i], () => setTimeout(() => write(i + 1), 5));
    };
    write(0);
  });
}

beforeAll(async () => {
  fakes = await startFakeProviders();
  gw = await startLocalGateway({
    port: 0,
    maxRequestBytes: MAX,
    providers: { openai: { kind: 'openai', baseUrl: fakes.openai.baseUrl } },
    log: jsonLogger('local', (l) => lines.push(JSON.parse(l))),
  });
  const tenant = await raw('POST', '/admin/tenants', [JSON.stringify({ tenantId: 'local-http', mode: 'managed', policy: { monthlyBudgetUsd: 10 } })]);
  adminToken = JSON.parse(tenant.text).token;
  await raw('POST', '/vault/secrets', [JSON.stringify({ provider: 'openai', apiKey: 'sk-fake-openai-key' })], { authorization: `Bearer ${adminToken}` });
  invoke = JSON.parse((await raw('POST', '/vault/tokens', [JSON.stringify({ role: 'invoke', label: 'app' })], { authorization: `Bearer ${adminToken}` })).text).token;
}, 60_000);
afterAll(async () => {
  await gw?.stop();
  await fakes?.close();
});

const chat = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `hello ${'x'.repeat(3000)} world` }] });

test('a body sent in several chunks arrives whole; the answer names its request id; one log line for it', async () => {
  const before = lines.length;
  const pieces = [chat.slice(0, 10), chat.slice(10, 1500), chat.slice(1500)];
  const res = await raw('POST', '/v1/chat/completions', pieces, { authorization: `Bearer ${invoke}` });
  expect(res.status).toBe(200);
  expect(JSON.parse(res.text).choices[0].message.content).toContain('world');
  const id = res.headers['x-request-id'];
  expect(typeof id).toBe('string');
  expect(res.headers['content-length']).toBe(String(Buffer.byteLength(res.text)));
  const mine = lines.slice(before).filter((l) => l.message === 'request' && l.requestId === id);
  expect(mine).toHaveLength(1);
  expect(mine[0]).toMatchObject({ status: 200, route: 'chat' });
});

test('multi-byte text split inside a character is decoded once, whole', async () => {
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'grüße 🌍 ende' }] });
  const bytes = Buffer.from(body, 'utf8');
  const cut = bytes.indexOf(Buffer.from('🌍', 'utf8')) + 2;
  const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(new URL('/v1/chat/completions', gw.url), { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${invoke}` } }, (r) => {
      let text = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (text += c));
      r.on('end', () => resolve({ status: r.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.write(bytes.subarray(0, cut), () => setTimeout(() => req.end(bytes.subarray(cut)), 5));
  });
  expect(res.status).toBe(200);
  expect(JSON.parse(res.text).choices[0].message.content).toContain('🌍 ende');
});

test('a body over the limit is refused with 413 in the OpenAI error shape, in one or many chunks', async () => {
  const big = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'y'.repeat(MAX) }] });
  for (const pieces of [[big], [big.slice(0, MAX / 2), big.slice(MAX / 2, MAX + 10), big.slice(MAX + 10)]]) {
    const res = await raw('POST', '/v1/chat/completions', pieces, { authorization: `Bearer ${invoke}` });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.text).error.code).toBe('request_too_large');
  }
});

test('query strings reach the apps; without one nothing is parsed; unknown names are refused', async () => {
  const auth = { authorization: `Bearer ${adminToken}` };
  const plain = await raw('GET', '/vault/usage', [], auth);
  expect(plain.status).toBe(200);
  const all = JSON.parse(plain.text);
  const models = (q: string) => raw('GET', `/vault/usage?${q}`, [], auth).then((r) => ({ status: r.status, json: JSON.parse(r.text) }));
  const none = await models('model=no-such-model&limit=5');
  expect(none.status).toBe(200);
  expect(JSON.stringify(none.json)).not.toEqual(JSON.stringify(all));
  expect((await models('limit=abc')).status).toBe(400);
  const bad = await raw('GET', '/vault/usage?secretish=abc', [], auth);
  expect(bad.status).toBe(400);
  expect(bad.text).not.toContain('secretish');
  expect(bad.headers['x-request-id']).toBeDefined();
});

test('every answer of the gateway itself names a request id: the health check and an unknown path as well', async () => {
  const ids = new Set<unknown>();
  for (const path of ['/healthz', '/no-such-path', '/healthz']) {
    const res = await raw('GET', path, []);
    expect(res.headers['x-request-id']).toMatch(/^[A-Za-z0-9-]{8,64}$/);
    ids.add(res.headers['x-request-id']);
  }
  expect(ids.size).toBe(3);
});

test('a request the HTTP parser refuses (malformed, headers too large) is answered with a request id and an error body too, and the gateway goes on', async () => {
  const rawSocket = (bytes: string) =>
    new Promise<string>((resolve) => {
      const s = connect(Number(new URL(gw.url).port), '127.0.0.1', () => s.write(bytes));
      let t = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (t += d));
      s.on('error', () => undefined);
      s.on('close', () => resolve(t));
    });
  const cases: Array<[string, number]> = [
    ['GET /healthz HTTP/1.1\r\nhost: x\r\nbad header line\r\n\r\n', 400],
    [`GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
  ];
  for (const [bytes, status] of cases) {
    const answer = await rawSocket(bytes);
    expect(answer.startsWith(`HTTP/1.1 ${status} `)).toBe(true);
    const head = answer.slice(0, answer.indexOf('\r\n\r\n'));
    expect(head).toMatch(/^x-request-id: [A-Za-z0-9-]{8,64}$/im);
    expect(JSON.parse(answer.slice(head.length + 4)).error.code).toEqual(expect.any(String));
  }
  expect((await raw('GET', '/healthz', [])).status).toBe(200);
});

test('a client that closes mid-body leaves the gateway answering others', async () => {
  await new Promise<void>((resolve) => {
    const req = request(new URL('/v1/chat/completions', gw.url), { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': '5000', authorization: `Bearer ${invoke}` } });
    req.on('error', () => resolve());
    req.write(chat.slice(0, 100), () => setTimeout(() => req.destroy(), 20));
    req.on('close', () => resolve());
  });
  const res = await raw('POST', '/v1/chat/completions', [chat], { authorization: `Bearer ${invoke}` });
  expect(res.status).toBe(200);
});

test('a stream: headers at once, each upstream event passed on as it comes (not held to the end), whole at the end', async () => {
  fakes.script('openai', [{ kind: 'drip', intervalMs: 60 }]);
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'one two three four five six' }], stream: true });
  const t0 = Date.now();
  const seen = await new Promise<{ headersAt: number; firstDataAt: number; endAt: number; text: string; type: unknown }>((resolve, reject) => {
    const req = request(new URL('/v1/chat/completions', gw.url), { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${invoke}` } }, (res) => {
      const headersAt = Date.now() - t0;
      let firstDataAt = -1;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
        if (firstDataAt < 0 && text.includes('"content":"')) firstDataAt = Date.now() - t0;
      });
      res.on('end', () => resolve({ headersAt, firstDataAt, endAt: Date.now() - t0, text, type: res.headers['content-type'] }));
    });
    req.on('error', reject);
    req.end(body);
  });
  expect(seen.type).toMatch(/^text\/event-stream/);
  expect(seen.text.trimEnd().endsWith('data: [DONE]')).toBe(true);
  expect(seen.firstDataAt).toBeGreaterThanOrEqual(0);
  // Six words dripped 60 ms apart: the first text is out long before the last.
  expect(seen.endAt - seen.firstDataAt).toBeGreaterThan(150);
  expect(seen.headersAt).toBeLessThanOrEqual(seen.firstDataAt);
});

test('stopping the gateway closes its kept-alive connections to the provider', async () => {
  const open = new Set<import('node:net').Socket>();
  const upstream = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'c', object: 'chat.completion', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }));
    });
  });
  upstream.on('connection', (s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
  });
  upstream.keepAliveTimeout = 60_000;
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const other = await startLocalGateway({
    port: 0,
    providers: { openai: { kind: 'openai', baseUrl: `http://127.0.0.1:${(upstream.address() as import('node:net').AddressInfo).port}` } },
    log: jsonLogger('local', () => undefined),
  });
  try {
    const call = (method: string, path: string, body: unknown, token?: string) =>
      fetch(`${other.url}${path}`, { method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) }).then((r) => r.json());
    const admin = (await call('POST', '/admin/tenants', { tenantId: 'local-stop', mode: 'managed' })).token;
    await call('POST', '/vault/secrets', { provider: 'openai', apiKey: 'sk-fake-openai-key' }, admin);
    const key = (await call('POST', '/vault/tokens', { role: 'invoke', label: 'app' }, admin)).token;
    const answer = await call('POST', '/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, key);
    expect(answer.choices[0].message.content).toBe('hi');
    expect(open.size).toBe(1);
  } finally {
    await other.stop();
  }
  // The upstream sees its sockets close when it gets to it: 1 s was short for a loaded runner. At
  // most 3 s: the gateway's 4 s idle-socket timeout (and this server's 5 s keep-alive timeout)
  // would close them anyway, and a close seen after that would not be the stop's.
  await waitUntil(() => open.size === 0, 'the upstream connections to close', 3_000).catch(() => undefined);
  expect(open.size).toBe(0);
  upstream.close();
});
