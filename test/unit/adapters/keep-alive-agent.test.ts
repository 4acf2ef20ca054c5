/**
 * The provider transport's agents (lambda/adapters/keep-alive-agent.ts) on real loopback sockets:
 * an idle socket is handed over as node's addRequest hands it over (last freed first, never a
 * destroyed one, never another origin's), the pool's books stay node's, and a server's Keep-Alive
 * hint is followed as node follows it.
 */
import { once } from 'node:events';
import { Agent as NodeAgent, createServer, request, type IncomingMessage, type Server } from 'node:http';
import { request as tlsRequest } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { KeepAliveHttpAgent, KeepAliveHttpsAgent } from '../../../lambda/adapters/keep-alive-agent';
import { startLoopbackTlsServer, type LoopbackTlsServer } from '../../support/loopback-tls';

interface Upstream {
  readonly server: Server;
  readonly port: number;
  /** Server-side sockets, in the order they connected. */
  readonly connections: Socket[];
  keepAliveHeader?: string;
  /** Answers with Connection: close. */
  close?: boolean;
  /** Holds each answer until released (to have several requests in flight). */
  hold: boolean;
  readonly held: (() => void)[];
}

const upstreams: Upstream[] = [];
const agents: NodeAgent[] = [];

async function upstream(): Promise<Upstream> {
  const u = { connections: [] as Socket[], hold: false, held: [] as (() => void)[] } as unknown as Upstream & { server: Server; port: number };
  u.server = createServer((req, res) => {
    req.resume();
    const answer = () => {
      if (u.keepAliveHeader !== undefined) res.setHeader('Keep-Alive', u.keepAliveHeader);
      if (u.close) res.setHeader('Connection', 'close');
      res.end(String(u.connections.indexOf(req.socket)));
    };
    if (u.hold) u.held.push(answer);
    else req.on('end', answer);
  });
  u.server.on('connection', (s: Socket) => u.connections.push(s));
  u.server.listen(0, '127.0.0.1');
  await once(u.server, 'listening');
  u.port = (u.server.address() as AddressInfo).port;
  upstreams.push(u);
  return u;
}

function agent(timeout = 4_000): KeepAliveHttpAgent {
  const a = new KeepAliveHttpAgent({ keepAlive: true, timeout, scheduling: 'lifo' });
  agents.push(a);
  return a;
}

/** One request as the transport sends it (Host in the raw header list); resolves with the answer and the client socket. */
async function call(a: NodeAgent, u: Upstream): Promise<{ connection: number; socket: Socket; reused: boolean }> {
  const req = request({ hostname: '127.0.0.1', port: u.port, path: '/', method: 'POST', headers: ['host', `127.0.0.1:${u.port}`, 'content-length', '2'], agent: a });
  req.end('{}');
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  let text = '';
  res.setEncoding('utf8');
  res.on('data', (d: string) => (text += d));
  await once(res, 'end');
  const socket = req.socket!;
  // The socket goes back to the pool a tick after the answer's end.
  await new Promise((r) => setImmediate(r));
  return { connection: Number(text), socket, reused: req.reusedSocket };
}

/** node's pool name for the upstream (Agent.getName: host, port, no local address). */
const nameOf = (u: Upstream) => `127.0.0.1:${u.port}:`;

afterEach(async () => {
  for (const a of agents.splice(0)) a.destroy();
  for (const u of upstreams.splice(0)) {
    u.server.closeAllConnections();
    await new Promise((r) => u.server.close(r));
  }
});

test('sequential requests reuse the one idle socket; the books are node\'s (no busy socket left, one idle, one counted)', async () => {
  const a = agent();
  const u = await upstream();
  const first = await call(a, u);
  expect(first.reused).toBe(false);
  for (let i = 0; i < 5; i++) {
    const next = await call(a, u);
    expect(next).toMatchObject({ connection: 0, reused: true });
    expect(next.socket).toBe(first.socket);
  }
  expect(u.connections).toHaveLength(1);
  expect(a.sockets).toEqual({});
  expect(Object.keys(a.freeSockets)).toEqual([nameOf(u)]);
  expect(a.freeSockets[nameOf(u)]).toHaveLength(1);
  expect((a as unknown as { totalSocketCount: number }).totalSocketCount).toBe(1);
});

test('with several idle sockets the last freed goes first; a destroyed idle socket is never handed over; with none left a new connection is made', async () => {
  const a = agent();
  const u = await upstream();
  u.hold = true;
  // Three requests in flight: three connections.
  const inFlight = [call(a, u), call(a, u), call(a, u)];
  while (u.held.length < 3) await new Promise((r) => setTimeout(r, 2));
  u.hold = false;
  // Answered in the order 2, 0, 1: connection 1's socket is freed last.
  for (const i of [2, 0, 1]) {
    u.held[i]();
    await new Promise((r) => setTimeout(r, 10));
  }
  const done = await Promise.all(inFlight);
  const byConnection = new Map(done.map((d) => [d.connection, d.socket]));
  expect(a.freeSockets[nameOf(u)]).toHaveLength(3);

  expect((await call(a, u)).connection).toBe(1);
  // The socket on top of the pool is destroyed while idle: the next one below is handed over.
  byConnection.get(1)!.destroy();
  byConnection.get(0)!.destroy();
  expect((await call(a, u)).connection).toBe(2);
  byConnection.get(2)!.destroy();
  await new Promise((r) => setTimeout(r, 20));
  const fresh = await call(a, u);
  expect(fresh).toMatchObject({ connection: 3, reused: false });
  expect(u.connections).toHaveLength(4);
});

test('a request with socket or TLS options of its own (not what the transport sends) goes through node\'s addRequest: it gets a socket of its own pool name', async () => {
  const a = agent();
  const u = await upstream();
  const plain = (await call(a, u)).socket;
  const req = request({ hostname: '127.0.0.1', port: u.port, path: '/', method: 'POST', family: 4, headers: ['host', `127.0.0.1:${u.port}`, 'content-length', '2'], agent: a });
  req.end('{}');
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  res.resume();
  await once(res, 'end');
  // node's name for it carries the family: not the idle socket of the plain name.
  expect(req.socket).not.toBe(plain);
  expect(req.reusedSocket).toBe(false);
});

test('two origins never share a socket', async () => {
  const a = agent();
  const [u1, u2] = [await upstream(), await upstream()];
  const s1 = (await call(a, u1)).socket;
  const s2 = (await call(a, u2)).socket;
  expect(s1).not.toBe(s2);
  for (let i = 0; i < 3; i++) {
    expect((await call(a, u1)).socket).toBe(s1);
    expect((await call(a, u2)).socket).toBe(s2);
  }
  expect(u1.connections).toHaveLength(1);
  expect(u2.connections).toHaveLength(1);
});

test('at maxSockets a request waits for the busy socket (node\'s queue) and is answered on it', async () => {
  const a = new KeepAliveHttpAgent({ keepAlive: true, maxSockets: 1, timeout: 4_000, scheduling: 'lifo' });
  agents.push(a);
  const u = await upstream();
  const answers = await Promise.all([call(a, u), call(a, u), call(a, u)]);
  expect(answers.map((x) => x.connection)).toEqual([0, 0, 0]);
  expect(u.connections).toHaveLength(1);
});

test('a server\'s Keep-Alive hint as node reads it: a shorter one (less a second) becomes the idle timeout, one of a second or less keeps no socket, a longer one or none leaves the agent\'s', async () => {
  const a = agent(4_000);
  const u = await upstream();
  u.keepAliveHeader = 'timeout=3';
  expect((await call(a, u)).socket.timeout).toBe(2_000);
  u.keepAliveHeader = 'timeout=60';
  expect((await call(a, u)).socket.timeout).toBe(4_000);
  u.keepAliveHeader = 'max=5';
  expect((await call(a, u)).socket.timeout).toBe(4_000);
  u.keepAliveHeader = 'timeout=1';
  const last = await call(a, u);
  await new Promise((r) => setTimeout(r, 20));
  expect(last.socket.destroyed).toBe(true);
  expect(a.freeSockets).toEqual({});
  expect((await call(a, u)).reused).toBe(false);
});

test('an answer with Connection: close: its socket is not kept, the next request connects again', async () => {
  const a = agent();
  const u = await upstream();
  u.close = true;
  const first = await call(a, u);
  await new Promise((r) => setTimeout(r, 20));
  expect(first.socket.destroyed).toBe(true);
  expect(a.freeSockets).toEqual({});
  u.close = false;
  expect(await call(a, u)).toMatchObject({ connection: 1, reused: false });
  expect((await call(a, u)).reused).toBe(true);
});

test('an error on an idle socket closes it and takes it out of the pool (nothing uncaught); one \'free\' listener on the agent', async () => {
  const a = agent();
  expect(a.listenerCount('free')).toBe(1);
  const u = await upstream();
  const { socket } = await call(a, u);
  expect(socket.listenerCount('error')).toBeGreaterThan(0);
  socket.emit('error', new Error('reset while idle'));
  await new Promise((r) => setTimeout(r, 20));
  expect(socket.destroyed).toBe(true);
  expect(a.freeSockets).toEqual({});
  expect(a.sockets).toEqual({});
  const next = await call(a, u);
  expect(next).toMatchObject({ connection: 1, reused: false });
  // A reused socket carries no idle-error listener of the pool while it serves a request.
  const before = next.socket.listenerCount('error');
  expect((await call(a, u)).reused).toBe(true);
  expect(next.socket.listenerCount('error')).toBe(before);
});

test('an idle socket is closed after the agent\'s timeout, and the next request connects again', async () => {
  const a = agent(150);
  const u = await upstream();
  const { socket } = await call(a, u);
  await once(socket, 'close');
  expect(a.freeSockets).toEqual({});
  expect((await call(a, u)).reused).toBe(false);
  expect(u.connections).toHaveLength(2);
});

describe('the https agent (a TLS server on 127.0.0.1, a certificate made for the test by openssl)', () => {
  let server: LoopbackTlsServer;
  beforeAll(async () => {
    server = await startLoopbackTlsServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('ok'));
    });
  });
  afterAll(() => server.close());
  const tlsCall = async (a: NodeAgent): Promise<{ socket: Socket; reused: boolean }> => {
    const req = tlsRequest({ hostname: '127.0.0.1', port: server.port, path: '/', method: 'POST', headers: ['host', `127.0.0.1:${server.port}`, 'content-length', '2'], agent: a });
    req.end('{}');
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    res.resume();
    await once(res, 'end');
    await new Promise((r) => setImmediate(r));
    return { socket: req.socket!, reused: req.reusedSocket };
  };

  test('node\'s https agent (protocol, TLS-aware pool name); sequential requests reuse one verified connection', async () => {
    const a = new KeepAliveHttpsAgent({ keepAlive: true, timeout: 4_000, scheduling: 'lifo', ca: server.cert });
    agents.push(a);
    expect(a).toBeInstanceOf(NodeAgent);
    expect((a as unknown as { protocol: string }).protocol).toBe('https:');
    const first = await tlsCall(a);
    expect(first.reused).toBe(false);
    for (let i = 0; i < 3; i++) expect(await tlsCall(a)).toEqual({ socket: first.socket, reused: true });
    expect(server.connections).toHaveLength(1);
    // The pool name is node's https one (it carries the agent's TLS options), not the plain host:port.
    expect(Object.keys(a.freeSockets)).toHaveLength(1);
    expect(Object.keys(a.freeSockets)[0].startsWith(`127.0.0.1:${server.port}:`)).toBe(true);
    expect(Object.keys(a.freeSockets)[0].length).toBeGreaterThan(`127.0.0.1:${server.port}:`.length);
  });

  test('an agent that does not trust the certificate gets no connection (verification is node\'s, per agent)', async () => {
    const a = new KeepAliveHttpsAgent({ keepAlive: true, timeout: 4_000 });
    agents.push(a);
    await expect(tlsCall(a)).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    expect(a.freeSockets).toEqual({});
  });
});
