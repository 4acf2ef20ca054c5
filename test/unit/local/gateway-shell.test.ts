/**
 * The local gateway's HTTP shell on real loopback sockets: the client-gone signal (one per
 * connection) and the held answer's headers (local/gateway.ts).
 */
import { getEventListeners, once } from 'node:events';
import { createServer, IncomingMessage, request, Server, ServerResponse } from 'node:http';
import { AddressInfo, connect, Socket } from 'node:net';
import { clientGoneSignal, nodeSink, readBody, stringHeaders } from '../../../local/gateway';
import { waitUntil } from '../../support/wait';

interface Seen {
  readonly signal: AbortSignal;
  readonly res: ServerResponse;
  /** The request's own abort listener fired (while its handler ran). */
  readonly cut: () => boolean;
  release(): void;
}

let server: Server;
let port: number;
let seen: Seen[];
let hold: boolean;
const warnings: Error[] = [];
const onWarning = (w: Error) => warnings.push(w);

beforeEach(async () => {
  seen = [];
  hold = false;
  warnings.length = 0;
  process.on('warning', onWarning);
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const index = seen.length;
    const signal = clientGoneSignal(res);
    // As the router does: a listener for the request's life, removed at its end.
    let cut = false;
    const onAbort = () => void (cut = true);
    signal.addEventListener('abort', onAbort, { once: true });
    const answer = () => {
      signal.removeEventListener('abort', onAbort);
      const sink = nodeSink(res, { holdEndUntilDone: true });
      sink.start(200, { 'content-type': 'application/json', 'x-request-id': `r${index}`, 'Content-Length': '999' });
      sink.write('{"ok":');
      sink.write('true}');
      sink.end();
      sink.done();
    };
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      if (!res.destroyed) answer();
      else signal.removeEventListener('abort', onAbort);
    };
    seen.push({ signal, res, cut: () => cut, release });
    if (!hold) req.on('end', release);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

afterEach(async () => {
  process.removeListener('warning', onWarning);
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

/** Raw requests on one socket; resolves with the socket once `count` full responses arrived. */
async function onOneSocket(count: number, pipelined = false): Promise<{ socket: Socket; text: () => string }> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (text += d));
  const req = `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}`;
  // Whole answers (the body is last): a status line alone may arrive a packet before its body.
  const responses = () => (text.match(/\{"ok":true\}/g) ?? []).length;
  if (pipelined) socket.write(req.repeat(count));
  for (let i = 0; i < count; i++) {
    if (!pipelined) socket.write(req);
    while (responses() < (pipelined ? 0 : i + 1)) await new Promise((r) => setTimeout(r, 2));
  }
  return { socket, text: () => text };
}

test('many requests on one kept-alive connection: each answered whole with one content-length; none is cut, no listener left, no leak warning', async () => {
  const { socket, text } = await onOneSocket(40);
  const answers = text().split('HTTP/1.1 200').slice(1);
  expect(answers).toHaveLength(40);
  for (const [i, a] of answers.entries()) {
    expect(a).toContain(`x-request-id: r${i}\r\n`);
    expect(a.match(/content-length/gi)).toEqual(['content-length']);
    expect(a).toContain('content-length: 11\r\n');
    expect(a.endsWith('{"ok":true}')).toBe(true);
  }
  for (const s of seen) expect(s.signal.aborted).toBe(false);
  expect(getEventListeners(seen[0].signal, 'abort')).toHaveLength(0);
  // The client goes away after its answers: no finished request is cut afterwards.
  socket.destroy();
  await new Promise((r) => setTimeout(r, 50));
  for (const s of seen) expect(s.signal.aborted).toBe(false);
  expect(warnings).toEqual([]);
});

test('a request in flight after earlier ones on the same connection: the client closing cuts it', async () => {
  const { socket } = await onOneSocket(3);
  hold = true;
  socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}`);
  while (seen.length < 4) await new Promise((r) => setTimeout(r, 2));
  const inFlight = seen[3];
  expect(inFlight.signal.aborted).toBe(false);
  const aborted = once(inFlight.signal, 'abort');
  socket.destroy();
  await aborted;
  expect(inFlight.signal.aborted).toBe(true);
  expect(String((inFlight.signal.reason as Error).message)).toBe('client disconnected');
  inFlight.release();
});

test('pipelined requests in flight on one connection (more than the default listener limit): none cut while the client stays, all cut when it leaves, no leak warning', async () => {
  hold = true;
  const { socket } = await onOneSocket(12, true);
  // node parses pipelined requests and hands them over at once; their answers queue in order.
  while (seen.length < 12) await new Promise((r) => setTimeout(r, 2));
  for (const s of seen) expect(s.signal.aborted).toBe(false);
  expect(getEventListeners(seen[0].signal, 'abort')).toHaveLength(12);
  const aborted = once(seen[0].signal, 'abort');
  socket.destroy();
  await aborted;
  for (const s of seen) expect(s.signal.aborted).toBe(true);
  for (const s of seen) s.release();
  expect(warnings).toEqual([]);
});

test('pipelined requests answered in order on one connection, none cut', async () => {
  const { socket, text } = await onOneSocket(12, true);
  while ((text().match(/\{"ok":true\}/g) ?? []).length < 12) await new Promise((r) => setTimeout(r, 2));
  expect(text().split('HTTP/1.1 200').slice(1).map((a) => /x-request-id: (r\d+)/.exec(a)![1])).toEqual(Array.from({ length: 12 }, (_, i) => `r${i}`));
  for (const s of seen) expect(s.signal.aborted).toBe(false);
  socket.destroy();
});

test('a fresh connection gets a signal of its own: one client leaving does not cut another', async () => {
  hold = true;
  const a = await onOneSocket(1, true);
  const b = await onOneSocket(1, true);
  while (seen.length < 2) await new Promise((r) => setTimeout(r, 2));
  const [sa, sb] = seen;
  expect(sa.signal).not.toBe(sb.signal);
  const aborted = once(sa.signal, 'abort');
  a.socket.destroy();
  await aborted;
  expect(sb.signal.aborted).toBe(false);
  sb.release();
  sa.release();
  // b's answer arrives when it arrives (a loaded machine may take more than a few ms).
  await waitUntil(() => b.text().includes('{"ok":true}'), "b's answer");
  expect(b.text()).toContain('{"ok":true}');
  b.socket.destroy();
});

test('a node:http client request (the SDKs) answered with the held body in one piece', async () => {
  const out = await new Promise<{ status: number; headers: Record<string, unknown>; text: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/x', headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end('{}');
  });
  expect(out).toMatchObject({ status: 200, text: '{"ok":true}' });
  expect(out.headers['content-length']).toBe('11');
  expect(out.headers['x-request-id']).toBe('r0');
});

test('a held answer is framed by its content-length alone: a Transfer-Encoding or another length among its headers is not written, a CR/LF in a value is refused', async () => {
  const framed = createServer((req, res) => {
    const sink = nodeSink(res, { holdEndUntilDone: true });
    const evil = req.url === '/crlf';
    sink.start(200, { 'content-type': 'application/json', 'Transfer-Encoding': 'chunked', 'CONTENT-LENGTH': '5', ...(evil ? { 'x-note': 'a\r\nset-cookie: s=1' } : {}) });
    sink.write('{"ok":true}');
    sink.end();
    try {
      sink.done();
    } catch (err) {
      res.writeHead(500, { 'x-refused': (err as { code?: string }).code ?? 'error' });
      res.end();
    }
  });
  framed.listen(0, '127.0.0.1');
  await once(framed, 'listening');
  const fport = (framed.address() as AddressInfo).port;
  const rawGet = (path: string) =>
    new Promise<string>((resolve) => {
      const s = connect(fport, '127.0.0.1', () => s.write(`GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`));
      let t = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (t += d));
      s.on('close', () => resolve(t));
    });
  try {
    const ok = await rawGet('/');
    const head = ok.slice(0, ok.indexOf('\r\n\r\n'));
    expect(head.match(/^(content-length|transfer-encoding):/gim)).toEqual(['content-length:']);
    expect(head).toMatch(/^content-length: 11$/im);
    expect(ok.endsWith('\r\n\r\n{"ok":true}')).toBe(true);
    const refused = await rawGet('/crlf');
    expect(refused).toMatch(/^HTTP\/1\.1 500 /);
    expect(refused).toMatch(/x-refused: ERR_INVALID_CHAR/i);
    expect(refused.toLowerCase()).not.toContain('set-cookie');
  } finally {
    framed.closeAllConnections();
    await new Promise((r) => framed.close(r));
  }
});

test('HTTP/1.0 and Connection: close: the server ends the connection after the answer, and that request is not cut', async () => {
  for (const head of ['POST /v1/x HTTP/1.0\r\ncontent-length: 2\r\n\r\n{}', 'POST /v1/x HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}']) {
    const before = seen.length;
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (text += d));
    const closed = once(socket, 'close');
    socket.write(head);
    await closed;
    expect(text).toMatch(/^HTTP\/1\.[01] 200 /);
    expect(text.endsWith('{"ok":true}')).toBe(true);
    expect(seen).toHaveLength(before + 1);
    await new Promise((r) => setTimeout(r, 20));
    expect(seen[before].signal.aborted).toBe(false);
  }
});

test('a client that leaves mid-body after answered requests: only the unfinished request is cut (the signal is the connection\'s: the answered ones had let go of it)', async () => {
  const { socket } = await onOneSocket(2);
  socket.write('POST /v1/x HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{"partial":');
  while (seen.length < 3) await new Promise((r) => setTimeout(r, 2));
  socket.destroy();
  // The server sees the close when it gets to it; the answered requests' listeners would have
  // fired in that same dispatch (one signal per connection), so they are checked right after.
  await waitUntil(() => seen[2].cut(), 'the unfinished request to be cut');
  expect(seen.map((s) => s.cut())).toEqual([false, false, true]);
  // One object per connection: it now reads aborted for every request that was on it, which is
  // why a handler must not look at it after its own answer finished (local/gateway.ts).
  expect(seen[0].signal).toBe(seen[2].signal);
  expect(seen[2].signal.aborted).toBe(true);
  seen[2].release();
});

describe('the request body and headers (readBody, stringHeaders)', () => {
  let bodyServer: Server;
  let bodyPort: number;
  let got: { body?: string; error?: string; headers: Record<string, string>; ended: boolean; dataListeners?: number }[];
  let arrived = 0;
  const LIMIT = 64;
  beforeEach(async () => {
    got = [];
    arrived = 0;
    bodyServer = createServer((req, res) => {
      arrived++;
      const headers = stringHeaders(req);
      readBody(req, LIMIT).then(
        (body) => {
          got.push({ body, headers, ended: req.readableEnded || req.complete, dataListeners: req.listenerCount('data') });
          res.writeHead(200, { 'content-length': String(Buffer.byteLength(body ?? '')) });
          res.end(body ?? '');
        },
        (err: Error) => got.push({ error: err.message, headers, ended: false }),
      );
    });
    bodyServer.listen(0, '127.0.0.1');
    await once(bodyServer, 'listening');
    bodyPort = (bodyServer.address() as AddressInfo).port;
  });
  afterEach(async () => {
    bodyServer.closeAllConnections();
    await new Promise((r) => bodyServer.close(r));
  });
  /** Sends the parts with a pause between them; resolves with everything the server wrote back. */
  const send = async (parts: (string | Buffer)[], answers = 1, pauseMs = 15): Promise<string> => {
    const socket = connect(bodyPort, '127.0.0.1');
    await once(socket, 'connect');
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (text += d));
    for (const [i, p] of parts.entries()) {
      if (i > 0) await new Promise((r) => setTimeout(r, pauseMs));
      socket.write(p);
    }
    await waitUntil(() => (text.match(/HTTP\/1\.1 200/g) ?? []).length >= answers, `${answers} answers`);
    socket.destroy();
    return text;
  };
  const head = (length: number, extra = '') => `POST /v1/x HTTP/1.1\r\nhost: x\r\ncontent-length: ${length}${extra}\r\n\r\n`;

  test('a body that came with its headers, one that arrives in pieces (a character split between them), none: each read whole', async () => {
    const text = '{"t":"\u00e9t\u00e9 \u{1F600}"}';
    const bytes = Buffer.from(text);
    await send([head(bytes.length) + text]);
    await send([Buffer.concat([Buffer.from(head(bytes.length)), bytes.subarray(0, 8)]), bytes.subarray(8, 9), bytes.subarray(9)]);
    await send([head(0)]);
    await send([`GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n`]);
    expect(got.map((g) => g.body)).toEqual([text, text, undefined, undefined]);
  });

  test('a body that came with its headers is taken in one read (no stream events); one still arriving, a chunked one, and a GET through the events or none', async () => {
    await send([head(7) + '{"n":1}']);
    await send([head(7) + '{"n"', ':1}']);
    await send([`POST /v1/x HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{"n\r\n4\r\n":1}\r\n0\r\n\r\n`]);
    await send([`GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n`]);
    await send([head(0)]);
    expect(got.map((g) => g.body)).toEqual(['{"n":1}', '{"n":1}', '{"n":1}', undefined, undefined]);
    expect(got.map((g) => g.dataListeners)).toEqual([0, 1, 1, 0, 0]);
  });

  test('framing the one-read path relies on: a length beside Transfer-Encoding, two lengths (even equal ones) or a list are refused by node before any handler runs', async () => {
    const refused = async (raw: string): Promise<string> => {
      const socket = connect(bodyPort, '127.0.0.1');
      await once(socket, 'connect');
      let text = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => (text += d));
      const closed = once(socket, 'close');
      socket.write(raw);
      await closed;
      return text;
    };
    const framings = [
      'content-length: 3\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
      'content-length: 3\r\ncontent-length: 5\r\n\r\nabcde',
      'content-length: 3\r\ncontent-length: 3\r\n\r\nabc',
      'content-length: 3, 3\r\n\r\nabc',
    ];
    for (const f of framings) expect(await refused(`POST /v1/x HTTP/1.1\r\nhost: x\r\n${f}`)).toMatch(/^HTTP\/1\.1 400 /);
    expect(arrived).toBe(0);
  });

  test('a body that came whole but is longer than the limit, taken in one read, is cut at the limit too', async () => {
    const long = 'y'.repeat(LIMIT + 10);
    await send([head(long.length) + long]);
    expect(got[0]).toMatchObject({ body: 'y'.repeat(LIMIT), dataListeners: 0 });
  });

  test('a body longer than the limit is cut at it, whether it came whole or in pieces (the size check then answers 413)', async () => {
    const long = 'x'.repeat(LIMIT * 4);
    await send([head(long.length) + long]);
    await send([head(long.length) + long.slice(0, 10), long.slice(10, LIMIT + 3), long.slice(LIMIT + 3)]);
    expect(got.map((g) => g.body)).toEqual(['x'.repeat(LIMIT), 'x'.repeat(LIMIT)]);
  });

  test('pipelined requests on one connection each read their own body', async () => {
    const reqs = ['{"n":1}', '{"n":22}', '', '{"n":333}'].map((b) => head(b.length) + b).join('');
    const out = await send([reqs], 4);
    // Each request's body (the empty one may be read before the one ahead of it: the answers are still in order).
    expect(got.map((g) => g.body).sort()).toEqual(['{"n":1}', '{"n":22}', '{"n":333}', undefined]);
    expect(out.endsWith('{"n":333}')).toBe(true);
  });

  test('a connection that closes mid-body fails the read; the server goes on answering others', async () => {
    const socket = connect(bodyPort, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(head(100) + '{"partial":');
    await waitUntil(() => arrived > 0, 'the request to arrive');
    socket.destroy();
    await waitUntil(() => got.length > 0, 'the read to fail');
    expect(got[0].error).toMatch(/^(aborted|the request body ended early)$/);
    expect(got[0].body).toBeUndefined();
    await send([head(2) + '{}']);
    expect(got[1].body).toBe('{}');
  });

  test('headers: node\'s single values (names in lower case, a repeated header joined or its first kept); a Set-Cookie list is left out', async () => {
    await send([`POST /v1/x HTTP/1.1\r\nHost: x\r\nX-Multi: a\r\nx-multi: b\r\nAuthorization: Bearer first\r\nauthorization: Bearer second\r\ncontent-length: 0\r\n\r\n`]);
    await send([`POST /v1/x HTTP/1.1\r\nhost: x\r\nset-cookie: a=1\r\nx-other: y\r\ncontent-length: 0\r\n\r\n`]);
    expect(got[0].headers).toMatchObject({ host: 'x', 'x-multi': 'a, b', authorization: 'Bearer first' });
    expect(got[1].headers).toEqual({ host: 'x', 'x-other': 'y', 'content-length': '0' });
    for (const g of got) for (const v of Object.values(g.headers)) expect(typeof v).toBe('string');
  });
});
