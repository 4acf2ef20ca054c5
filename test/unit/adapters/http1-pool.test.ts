/**
 * The provider transport's own HTTP/1.1 connections (lambda/adapters/http1-pool.ts: node's parser,
 * no ClientRequest) against raw TCP and TLS servers on 127.0.0.1: what node:http did for the
 * transport, it still does (1xx skipped, chunked and close-delimited bodies, heads in pieces,
 * Keep-Alive hints, node's header rules, verified TLS), and what it must refuse it refuses (an
 * upgrade, malformed framing, an oversized head, a header it would send malformed), with typed
 * failures that quote nothing and no connection kept after any of them.
 * The provider-http e2e suite runs the same transport through ProviderHttpClient.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { behavesAsChecked, HTTP1_POOL_AVAILABLE, Http1Pool, requestHead, type Parser, type ParserModule } from '../../../lambda/adapters/http1-pool';
import { type CallFailure, type HttpEndpoint, NodeHttpTransport } from '../../../lambda/adapters/node-http-transport';
import { startLoopbackTlsServer, type LoopbackTlsServer } from '../../support/loopback-tls';
import { requestSplitter } from '../../support/raw-http';

class Failed extends Error {
  constructor(
    readonly failure: CallFailure,
    readonly code?: string,
  ) {
    super(`failed: ${failure}`);
  }
}

const never = () => new AbortController().signal;
const transports: NodeHttpTransport[] = [];
const servers: { close(): void }[] = [];

afterAll(() => {
  for (const t of transports) t.close();
  for (const s of servers) s.close();
});

test('this node has the parser the pool was checked against (node 20): the transport uses it', () => {
  expect(process.versions.node.split('.')[0]).toBe('20');
  expect(HTTP1_POOL_AVAILABLE).toBe(true);
});

test('the pool is used only with a parser that behaves as checked: node 20\'s does; one that passes its callbacks otherwise, or accepts Content-Length beside Transfer-Encoding, does not', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const real = require('_http_common') as ParserModule;
  expect(behavesAsChecked(real)).toBe(true);
  /** node's parser class with one behaviour changed. */
  const variant = (change: 'arguments' | 'lenient'): ParserModule => {
    const P = real.HTTPParser;
    const Base = P as unknown as new () => Parser;
    class Variant extends Base {
      override execute(data: Buffer): number | object {
        if (change === 'lenient') return data.length;
        const complete = this[P.kOnHeadersComplete] as (...a: unknown[]) => number;
        // The status where node 20 passes the URL: a parser of another version.
        this[P.kOnHeadersComplete] = (...a: unknown[]) => complete(a[0], a[1], a[2], a[3], a[5], a[4], a[6], a[7], a[8]);
        return super.execute(data);
      }
    }
    return { HTTPParser: Object.assign(Variant, { RESPONSE: P.RESPONSE, kOnMessageBegin: P.kOnMessageBegin, kOnHeaders: P.kOnHeaders, kOnHeadersComplete: P.kOnHeadersComplete, kOnBody: P.kOnBody, kOnMessageComplete: P.kOnMessageComplete, kOnExecute: P.kOnExecute }) } as unknown as ParserModule;
  };
  expect(behavesAsChecked(variant('arguments'))).toBe(false);
  expect(behavesAsChecked(variant('lenient'))).toBe(false);
});

/** A raw TCP server: each complete request (head and Content-Length body) gets `answer(n, socket)`. */
async function rawServer(answer: (n: number, s: Socket, head: string) => void): Promise<{ endpoint: HttpEndpoint; connections: () => number; requests: () => number; heads: string[] }> {
  let requests = 0;
  let connections = 0;
  const heads: string[] = [];
  const open = new Set<Socket>();
  const server: Server = createTcpServer((s) => {
    connections++;
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => undefined);
    s.on(
      'data',
      requestSplitter((head) => {
        heads.push(head);
        answer(++requests, s, head);
      }),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  servers.push({
    close: () => {
      for (const s of open) s.destroy();
      server.close();
    },
  });
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: { url: new URL(`http://127.0.0.1:${port}/v1/chat/completions`), secure: false, hostname: '127.0.0.1', port, path: '/v1/chat/completions', host: `127.0.0.1:${port}` },
    connections: () => connections,
    requests: () => requests,
    heads,
  };
}

function transport(idleMs = 4_000): NodeHttpTransport {
  const t = new NodeHttpTransport(idleMs);
  transports.push(t);
  return t;
}

async function post(t: NodeHttpTransport, endpoint: HttpEndpoint, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<{ status: number; text: string; header: (n: string) => string | null }> {
  const a = await t.call(endpoint, { method: 'POST', headers, body: '{"q":1}', signal: never(), firstByteTimeoutMs: 2_000, fail: (f, code) => new Failed(f, code) });
  const text = await a.body.readText!(1_000_000);
  return { status: a.status, text: text ?? 'too large', header: (n) => a.headers.get(n) };
}

async function failure(p: Promise<unknown>): Promise<Failed> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Failed);
  return err as Failed;
}

test('1xx answers (100 Continue, 103 Early Hints with headers) are skipped: the final answer is read, and the connection is kept', async () => {
  const u = await rawServer((n, s) => {
    s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </x>; rel=preload\r\n\r\n');
    s.write(`HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n{"answer":${n}}`);
  });
  const t = transport();
  expect(await post(t, u.endpoint)).toMatchObject({ status: 200, text: '{"answer":1}' });
  expect(await post(t, u.endpoint)).toMatchObject({ status: 200, text: '{"answer":2}' });
  expect(u.connections()).toBe(1);
});

test('101 Switching Protocols is a failed connection (nothing here asked for an upgrade), and the connection closes', async () => {
  let closed = false;
  const u = await rawServer((_n, s) => {
    s.on('close', () => (closed = true));
    s.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n');
  });
  const err = await failure(post(transport(), u.endpoint));
  expect(err.failure).toBe('connection');
  await waitFor(() => closed);
});

test.each([
  ['Content-Length beside Transfer-Encoding', 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
  ['two different Content-Lengths', 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd'],
  ['a status line that is not HTTP/1.x', 'HTTP/9 200 OK\r\n\r\n'],
  ['a header line with a bare LF', 'HTTP/1.1 200 OK\r\nx-a: 1\nx-b: 2\r\ncontent-length: 2\r\n\r\nok'],
  ['a head larger than node\'s header limit', `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(20_000)}\r\ncontent-length: 2\r\n\r\nok`],
])('malformed framing (%s) is a typed connection failure that quotes nothing, and the connection closes', async (_what, answer) => {
  let closed = false;
  const u = await rawServer((_n, s) => {
    s.on('close', () => (closed = true));
    s.write(answer);
  });
  const err = await failure(post(transport(), u.endpoint));
  expect(err.failure).toBe('connection');
  expect(err.code).toMatch(/^HPE_[A-Z_]+$/);
  await waitFor(() => closed);
});

test('a chunked answer reads whole and keeps the connection; an answer delimited by the connection\'s close reads whole and is not reused', async () => {
  const u = await rawServer((n, s) => {
    if (n === 1) s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{"a":\r\n3\r\n"b"\r\n1\r\n}\r\n0\r\nx-trailer: t\r\n\r\n');
    else if (n === 2) s.end('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{"until":"close"}');
    else s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}');
  });
  const t = transport();
  expect(await post(t, u.endpoint)).toMatchObject({ text: '{"a":"b"}' });
  expect(await post(t, u.endpoint)).toMatchObject({ text: '{"until":"close"}' });
  expect(u.connections()).toBe(1);
  expect(await post(t, u.endpoint)).toMatchObject({ text: '{}' });
  expect(u.connections()).toBe(2);
});

test('a head that arrives a byte at a time reads as one that came whole: the same status and headers, by node\'s rules for repeated ones', async () => {
  const answer = 'HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nretry-after: 9\r\nX-Multi: a\r\nx-multi: b\r\ncontent-length: 4\r\n\r\nslow';
  const u = await rawServer((n, s) => {
    if (n === 1) return void s.write(answer);
    let i = 0;
    const next = (): void => {
      if (i < answer.length) s.write(answer[i++], () => setImmediate(next));
    };
    next();
  });
  const t = transport();
  const whole = await post(t, u.endpoint);
  const pieces = await post(t, u.endpoint);
  for (const r of [whole, pieces]) {
    expect(r.status).toBe(429);
    expect(r.text).toBe('slow');
    // node keeps the first Retry-After (a single-valued header) and joins the others.
    expect(r.header('retry-after')).toBe('7');
    expect(r.header('X-MULTI')).toBe('a, b');
    expect(r.header('x-absent')).toBeNull();
  }
  expect(u.connections()).toBe(1);
});

test('a Keep-Alive hint of one second or less keeps no connection; a longer one sets the idle timeout below it (less a second)', async () => {
  const u = await rawServer((n, s) => s.write(`HTTP/1.1 200 OK\r\nkeep-alive: timeout=${n <= 2 ? 1 : 2}\r\ncontent-length: 2\r\n\r\n{}`));
  const t = transport(60_000);
  await post(t, u.endpoint);
  await post(t, u.endpoint);
  expect(u.connections()).toBe(2);
  await post(t, u.endpoint); // timeout=2: kept for at most 1 s
  await post(t, u.endpoint);
  expect(u.connections()).toBe(3);
  await new Promise((r) => setTimeout(r, 1_300));
  await post(t, u.endpoint);
  expect(u.connections()).toBe(4);
});

test('a server that closes an idle kept-alive connection: the next call connects again and is answered', async () => {
  const u = await rawServer((n, s) => {
    s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}');
    if (n === 1) setTimeout(() => s.end(), 10);
  });
  const t = transport();
  await post(t, u.endpoint);
  await new Promise((r) => setTimeout(r, 60));
  expect(await post(t, u.endpoint)).toMatchObject({ status: 200, text: '{}' });
  expect(u.connections()).toBe(2);
});

test.each([
  ['a value with CR LF (a second header smuggled in)', { 'x-a': 'v\r\nx-injected: 1' }],
  ['a value with a bare LF', { 'x-a': 'v\nx' }],
  ['a value with a NUL', { 'x-a': 'v\u0000' }],
  ['a value outside ASCII', { 'x-a': 'caf\u00e9' }],
  ['a name with a space', { 'x a': 'v' }],
  ['a name with a colon', { 'x:a': 'v' }],
  ['an empty name', { '': 'v' }],
])('a header this would send malformed (%s) is refused before any byte goes out', async (_what, headers) => {
  const u = await rawServer((_n, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}'));
  const err = await failure(post(transport(), u.endpoint, headers as Record<string, string>));
  expect(err.failure).toBe('connection');
  await new Promise((r) => setTimeout(r, 30));
  expect(u.connections()).toBe(0);
});

test('the request head: Host first, the caller\'s Host, Connection and framing headers (in any case) replaced by ours, one Content-Length', () => {
  const head = requestHead('POST', '/v1/x?y=1', '127.0.0.1:9', { host: 'evil', 'content-length': '1', 'transfer-encoding': 'chunked', connection: 'close', 'x-a': 'b' }, 12);
  expect(head).toBe('POST /v1/x?y=1 HTTP/1.1\r\nhost: 127.0.0.1:9\r\nx-a: b\r\nconnection: keep-alive\r\ncontent-length: 12\r\n\r\n');
  expect(requestHead('POST', '/v1/x', 'h', { Host: 'evil', 'Content-Length': '1', 'TRANSFER-ENCODING': 'chunked', Connection: 'close', 'X-B': 'c' }, 2)).toBe('POST /v1/x HTTP/1.1\r\nhost: h\r\nX-B: c\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\n');
  expect(requestHead('GET', '/v1/models', 'h', {}, undefined)).toBe('GET /v1/models HTTP/1.1\r\nhost: h\r\nconnection: keep-alive\r\n\r\n');
  expect(requestHead('GET', '/a b', 'h', {}, undefined)).toBeUndefined();
  expect(requestHead('GET', 'http://other/', 'h', {}, undefined)).toBeUndefined();
  expect(requestHead('GET', '/', 'h\r\nx: y', {}, undefined)).toBeUndefined();
});

test('a body cancelled before its end closes the connection; one read to its end leaves it for the next call', async () => {
  const closes: number[] = [];
  const u = await rawServer((n, s) => {
    s.once('close', () => closes.push(n));
    if (n === 1) s.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"partial":');
    else s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}');
  });
  const t = transport();
  const a = await t.call(u.endpoint, { method: 'POST', headers: {}, body: '{}', signal: never(), firstByteTimeoutMs: 2_000, fail: (f, code) => new Failed(f, code) });
  await a.body.cancel();
  await waitFor(() => closes.includes(1));
  expect(await post(t, u.endpoint)).toMatchObject({ text: '{}' });
  expect(await post(t, u.endpoint)).toMatchObject({ text: '{}' });
  expect(u.connections()).toBe(2);
});

test('a body nobody reads yet whose connection breaks raises nothing uncaught; a read after it fails typed', async () => {
  const u = await rawServer((_n, s) => {
    s.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"partial":');
    setTimeout(() => s.destroy(), 10);
  });
  const t = transport();
  const a = await t.call(u.endpoint, { method: 'POST', headers: {}, body: '{}', signal: never(), firstByteTimeoutMs: 2_000, fail: (f, code) => new Failed(f, code) });
  await new Promise((r) => setTimeout(r, 60));
  const err = await failure(a.body.readText!(1_000));
  expect(err.failure).toBe('body_connection');
});

test('an answer whose body is malformed in the read that brought its head: the answer stands (its status), its body fails as a lost connection, and the connection closes', async () => {
  let closed = false;
  const u = await rawServer((_n, s) => {
    s.on('close', () => (closed = true));
    s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n');
  });
  const t = transport();
  const a = await t.call(u.endpoint, { method: 'POST', headers: {}, body: '{}', signal: never(), firstByteTimeoutMs: 2_000, fail: (f, code) => new Failed(f, code) });
  expect(a.status).toBe(200);
  const err = await failure(a.body.readText!(1_000));
  expect(err.failure).toBe('body_connection');
  expect(err.code).toMatch(/^HPE_[A-Z_]+$/);
  await waitFor(() => closed);
});

test('a whole answer (every byte with its head) reads once, by text or by iterator; cancelled, it reads as a destroyed body (a lost connection), and the connection serves the next call', async () => {
  const u = await rawServer((n, s) => s.write(`HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n{"answer":${n}}`));
  const t = transport();
  const call = () => t.call(u.endpoint, { method: 'POST', headers: {}, body: '{}', signal: never(), firstByteTimeoutMs: 2_000, fail: (f, code) => new Failed(f, code) });
  const first = await call();
  expect(await first.body.readText!(12)).toBe('{"answer":1}');
  const second = await call();
  expect(await second.body.readText!(11)).toBeUndefined();
  const third = await call();
  const parts: string[] = [];
  for await (const chunk of third.body) parts.push(Buffer.from(chunk).toString());
  expect(parts.join('')).toBe('{"answer":3}');
  const fourth = await call();
  await fourth.body.cancel();
  expect((await failure(fourth.body.readText!(100))).failure).toBe('body_connection');
  expect((await failure((async () => { for await (const _ of fourth.body) void _; })())).failure).toBe('body_connection');
  expect(await (await call()).body.readText!(100)).toBe('{"answer":5}');
  expect(u.connections()).toBe(1);
});

test('close() ends the idle connections and fails a call in flight as a lost connection', async () => {
  let closed = 0;
  const u = await rawServer((n, s) => {
    if (n > 1) return; // the second call waits for its answer
    s.once('close', () => closed++);
    s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}');
  });
  const t = new NodeHttpTransport();
  await post(t, u.endpoint);
  const pending = failure(post(t, u.endpoint));
  await waitFor(() => u.requests() === 2);
  t.close();
  expect((await pending).failure).toBe('connection');
  await waitFor(() => closed === 1);
});

test('an idle kept-alive connection keeps no process alive (a call in flight does), as node\'s agent', async () => {
  const u = await rawServer((n, s) => {
    if (n === 1) s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}');
  });
  // A process that makes one call and leaves its connection idle in the pool (idle timeout 60 s): it must exit by itself.
  const script = `
    const { NodeHttpTransport } = require('./lambda/adapters/node-http-transport');
    const t = new NodeHttpTransport(60000);
    const endpoint = ${JSON.stringify({ ...u.endpoint, url: undefined })};
    const signal = { aborted: false, addEventListener() {}, removeEventListener() {} };
    t.call(endpoint, { method: 'POST', headers: {}, body: '{}', signal, firstByteTimeoutMs: 5000, fail: (f) => new Error(f) })
      .then((a) => a.body.readText(100)).then((text) => process.stdout.write('answered ' + text));
  `;
  const started = Date.now();
  const child = spawn(process.execPath, ['-r', 'tsx/cjs', '-e', script], { cwd: join(__dirname, '..', '..', '..'), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  // Held by its idle connection it would run until the 60 s idle timeout: 15 s is plenty for a loaded runner.
  const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(kill);
  expect(out).toBe('answered {}');
  expect({ code, signal }).toEqual({ code: 0, signal: null });
  expect(Date.now() - started).toBeLessThan(15_000);
  expect(u.connections()).toBe(1);
});

describe('over TLS (a server on 127.0.0.1 with a certificate made for the test by openssl)', () => {
  let server: LoopbackTlsServer;
  beforeAll(async () => {
    server = await startLoopbackTlsServer((req, res) => {
      req.resume();
      req.on('end', () => res.end(`{"secure":${(req.socket as Socket & { encrypted?: boolean }).encrypted === true}}`));
    });
  });
  afterAll(() => server.close());
  const origin = () => ({ secure: true, hostname: '127.0.0.1', port: server.port });
  const call = async (pool: Http1Pool): Promise<string> => {
    const head = requestHead('POST', '/v1/chat/completions', `127.0.0.1:${server.port}`, {}, 2)!;
    const a = await pool.request(origin(), { head, body: '{}', signal: never(), firstByteTimeoutMs: 2_000 });
    if (a.whole !== undefined) return Buffer.concat(a.whole).toString();
    const chunks: Buffer[] = [];
    a.body!.on('data', (c: Buffer) => chunks.push(c));
    await once(a.body!, 'end');
    return Buffer.concat(chunks).toString();
  };

  test('a certificate the pool trusts: sequential calls share one verified connection', async () => {
    const pool = new Http1Pool(4_000, { ca: server.cert });
    try {
      for (let i = 0; i < 3; i++) expect(await call(pool)).toBe('{"secure":true}');
      expect(server.connections).toHaveLength(1);
    } finally {
      pool.close();
    }
  });

  test('a certificate nobody trusts (node\'s CA store): no connection, a typed failure with the TLS code only', async () => {
    const pool = new Http1Pool(4_000);
    try {
      const err = (await call(pool).catch((e: unknown) => e)) as { failure?: string; code?: string; message?: string };
      expect(err.failure).toBe('connection');
      expect(err.code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
      expect(String(err.message)).not.toContain(String(server.port));
    } finally {
      pool.close();
    }
  });
});

async function waitFor(cond: () => boolean, ms = 3_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
