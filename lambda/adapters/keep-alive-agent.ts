/**
 * node's kept-alive Agents (http and https) with two per-request costs taken out, for the provider
 * transport (node-http-transport.ts).
 *
 * 1. Handing over an idle socket. node's addRequest copies the request's options twice (objects
 *    without a prototype, slow to spread), works out the TLS server name and resets the socket's
 *    async id on every request, before it looks in the pool: about 7 µs of a request's CPU at one
 *    client here (an in-process A/B, the upstream on loopback). Here the pool's name for an origin
 *    is worked out once, by node's own getName over what addRequest would pass it (the merged
 *    options and the server name node would set), and an idle socket is handed over as node hands
 *    it over: reuseSocket (the documented hook: drops the idle-error listener, refs the socket),
 *    the socket back among the agent's busy ones, then the request's onSocket. Every other case (no
 *    idle socket: a new connection; the queue at maxSockets) is node's addRequest, unchanged.
 *    This reads the pool (freeSockets, sockets) as node 20's agent keeps it, so it runs only on the
 *    major version it was checked against; any other version uses node's addRequest throughout.
 *    What differs: a reused socket keeps the async id of its connection (node gives it a fresh one
 *    for async_hooks observers); nothing here reads async ids.
 * 2. Putting a socket back. node's keepSocketAlive reads the answer's Keep-Alive hint through its
 *    header object, which node builds on first use (a name match per header line, after the
 *    answer is out but before the next request is read); here the hint is read from the raw list,
 *    with node's rule: the idle timeout is min(agent timeout, hint seconds - 1 s), and a hint of
 *    one second or less keeps no socket. Node 20 only as well (it reads the answer as node 20's
 *    own keepSocketAlive does); elsewhere node's.
 * 3. The pool's 'free' step (node 20 only): node's listener looks the origin's name up again,
 *    walks the whole request queue of every origin (removeSocket) and resets the async id; about
 *    6 µs a request, spent after the answer but before the next request is read (at one client,
 *    with other work after the answer, on its critical path). Here the common case (a writable
 *    socket, nothing queued at any origin, a kept-alive answer, the pool below its limits) puts
 *    the socket back as node does: keepSocketAlive, off the busy list, an idle-error listener
 *    (destroy, agentRemove: node's), onto the idle list. Any other case is node's own listener.
 */
import { Agent as HttpAgent, type AgentOptions as HttpAgentOptions, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, type AgentOptions as HttpsAgentOptions } from 'node:https';
import { isIP, type Socket } from 'node:net';

/** The node major version whose agent internals the idle-socket hand-over was checked against. */
const CHECKED_NODE_MAJOR = 20;
const FAST_REUSE = Number(process.versions.node.split('.')[0]) === CHECKED_NODE_MAJOR;

/** node's margin below a server's Keep-Alive timeout (HTTP_AGENT_KEEP_ALIVE_TIMEOUT_BUFFER). */
const KEEP_ALIVE_HINT_MARGIN_MS = 1000;
/** Origins whose pool name is remembered; beyond that, names are worked out again (a cell calls few). */
const MAX_NAMES = 256;

/** What addRequest gets from ClientRequest (its options with host and port filled in). */
interface RequestOptions {
  readonly host?: string;
  readonly port?: number | string;
  readonly [key: string]: unknown;
}

/** The parts of node's agent that the hand-over uses: its pool, by name. */
interface Pool {
  readonly freeSockets: Record<string, Socket[] | undefined>;
  readonly sockets: Record<string, Socket[] | undefined>;
  readonly requests: Record<string, ClientRequest[] | undefined>;
  readonly options: Record<string, unknown>;
  readonly keepAlive: boolean;
  readonly maxSockets: number;
  readonly maxFreeSockets: number;
  readonly maxTotalSockets: number;
  readonly totalSocketCount: number;
  getName(options: object): string;
  reuseSocket(socket: Socket, req: ClientRequest): void;
  keepSocketAlive(socket: Socket): boolean;
}

/** A socket as the agent sees it: the request it serves (node's own field). */
type PoolSocket = Socket & { _httpMessage?: (ClientRequest & { shouldKeepAlive?: boolean; res?: IncomingMessage }) | null };
type FreeListener = (this: HttpAgent, socket: Socket, options: Record<string, unknown>) => void;

type AddRequest = (this: HttpAgent, req: ClientRequest, options: RequestOptions) => void;
const httpAddRequest = (HttpAgent.prototype as unknown as { addRequest: AddRequest }).addRequest;
const httpsAddRequest = (HttpsAgent.prototype as unknown as { addRequest: AddRequest }).addRequest;
const nodeKeepSocketAlive = HttpAgent.prototype.keepSocketAlive as unknown as (this: HttpAgent, socket: Socket) => boolean;
const nodeReuseSocket = HttpAgent.prototype.reuseSocket as unknown as (this: HttpAgent, socket: Socket, req: ClientRequest) => void;

export class KeepAliveHttpAgent extends HttpAgent {
  private readonly names = new Map<string, string>();
  constructor(options?: HttpAgentOptions) {
    super(options);
    takeOverFree(this);
  }
  addRequest(req: ClientRequest, options: RequestOptions): void {
    if (!handOverIdle(this, this.names, req, options)) httpAddRequest.call(this, req, options);
  }
  override keepSocketAlive(socket: Socket): boolean {
    return keepSocketAlive(this, socket);
  }
  override reuseSocket(socket: Socket, req: ClientRequest): void {
    socket.removeListener('error', onIdleError);
    nodeReuseSocket.call(this, socket, req);
  }
}

export class KeepAliveHttpsAgent extends HttpsAgent {
  private readonly names = new Map<string, string>();
  constructor(options?: HttpsAgentOptions) {
    super(options);
    takeOverFree(this);
  }
  addRequest(req: ClientRequest, options: RequestOptions): void {
    if (!handOverIdle(this, this.names, req, options)) httpsAddRequest.call(this, req, options);
  }
  override keepSocketAlive(socket: Socket): boolean {
    return keepSocketAlive(this, socket);
  }
  override reuseSocket(socket: Socket, req: ClientRequest): void {
    socket.removeListener('error', onIdleError);
    nodeReuseSocket.call(this, socket, req);
  }
}

/** node's pool name for these options, as node's addRequest works it out (remembered per origin). */
function nameOf(agent: HttpAgent, names: Map<string, string>, options: RequestOptions): string {
  const key = `${options.host}\n${options.port}`;
  let name = names.get(key);
  if (name === undefined) {
    const pool = agent as unknown as Pool;
    const merged: Record<string, unknown> = { ...options, ...pool.options };
    // calculateServerName: the request's Host header is in the raw header list (not one getHeader
    // sees), so the name is the host's, and none for an IP address.
    if (!merged.servername && merged.servername !== '') merged.servername = isIP(String(merged.host)) ? '' : merged.host;
    name = pool.getName(merged);
    if (names.size >= MAX_NAMES) names.clear();
    names.set(key, name);
  }
  return name;
}

/** Hands `req` an idle socket of its origin as node's addRequest does; false when there is none (or this is not node 20). */
function handOverIdle(agent: HttpAgent, names: Map<string, string>, req: ClientRequest, options: RequestOptions): boolean {
  // Only what the transport sends (these agents are its own): host and port, its Host header in
  // the raw list, no per-request socket or TLS options (which node's pool name would carry and the
  // remembered name, by host and port, would not).
  if (!FAST_REUSE || typeof options !== 'object' || req.getHeader('host') !== undefined) return false;
  if (options.socketPath !== undefined || options.localAddress !== undefined || options.family !== undefined || options.servername !== undefined) return false;
  if (options.ca !== undefined || options.cert !== undefined || options.key !== undefined || options.pfx !== undefined || options.rejectUnauthorized !== undefined) return false;
  const pool = agent as unknown as Pool;
  const name = nameOf(agent, names, options);
  const free = pool.freeSockets[name];
  if (free === undefined) return false;
  let socket = free.pop();
  while (socket !== undefined && socket.destroyed) socket = free.pop();
  if (free.length === 0) delete pool.freeSockets[name];
  if (socket === undefined) return false;
  pool.reuseSocket(socket, req);
  (pool.sockets[name] ??= []).push(socket);
  (req as ClientRequest & { onSocket(socket: Socket): void }).onSocket(socket);
  return true;
}

/** Puts node's own 'free' listener behind the common case (putBack). */
function takeOverFree(agent: HttpAgent): void {
  if (!FAST_REUSE) return;
  const listeners = agent.listeners('free');
  if (listeners.length !== 1) return;
  const nodeFree = listeners[0] as FreeListener;
  agent.removeListener('free', nodeFree);
  agent.on('free', (socket: Socket, options: Record<string, unknown>) => {
    if (!putBack(agent as unknown as Pool, socket as PoolSocket, options)) nodeFree.call(agent, socket, options);
  });
}

/**
 * node 20's 'free' step for the common case; false (nothing done) for any other, which node's
 * listener then takes. `options._agentKey` is the pool name node's createSocket gave the socket.
 */
function putBack(pool: Pool, socket: PoolSocket, options: Record<string, unknown>): boolean {
  const name = options?._agentKey;
  if (typeof name !== 'string' || !socket.writable) return false;
  // A request waits somewhere: node hands it this socket or makes it one (removeSocket).
  for (const origin in pool.requests) if (pool.requests[origin] !== undefined) return false;
  const req = socket._httpMessage;
  if (!req || !req.shouldKeepAlive || !pool.keepAlive) return false;
  const free = pool.freeSockets[name];
  const freeLen = free === undefined ? 0 : free.length;
  const busy = pool.sockets[name];
  if (pool.totalSocketCount > pool.maxTotalSockets || freeLen + (busy === undefined ? 0 : busy.length) > pool.maxSockets || freeLen >= pool.maxFreeSockets) return false;
  if (!pool.keepSocketAlive(socket)) {
    socket.destroy();
    return true;
  }
  socket._httpMessage = null;
  if (busy !== undefined) {
    const i = busy.lastIndexOf(socket);
    if (i !== -1) {
      busy.splice(i, 1);
      if (busy.length === 0) delete pool.sockets[name];
    }
  }
  socket.once('error', onIdleError);
  (free ?? (pool.freeSockets[name] = [])).push(socket);
  return true;
}

/** An error on an idle socket: closed and out of the pool (node's freeSocketErrorListener). */
function onIdleError(this: Socket): void {
  this.destroy();
  this.emit('agentRemove');
}

/** node 20's keepSocketAlive, with the Keep-Alive hint read from the raw header list. */
function keepSocketAlive(agent: HttpAgent, socket: Socket): boolean {
  if (!FAST_REUSE) return nodeKeepSocketAlive.call(agent, socket);
  socket.setKeepAlive(true, (agent as unknown as { keepAliveMsecs: number }).keepAliveMsecs);
  socket.unref();
  let timeout = Number((agent as unknown as Pool).options.timeout) || 0;
  const res = (socket as Socket & { _httpMessage?: { res?: IncomingMessage } })._httpMessage?.res;
  const hint = res ? keepAliveTimeoutMs(res.rawHeaders) : undefined;
  if (hint !== undefined) {
    if (hint <= 0) return false;
    if (hint < timeout) timeout = hint;
  }
  if (socket.timeout !== timeout) socket.setTimeout(timeout);
  return true;
}

/** The server's `Keep-Alive: timeout=N` less node's margin, from the answer's raw header list (first such header, as node reads it). */
function keepAliveTimeoutMs(raw: readonly string[]): number | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.length === 10 && name.toLowerCase() === 'keep-alive') {
      const seconds = /^timeout=(\d+)/.exec(raw[i + 1])?.[1];
      return seconds === undefined ? undefined : Math.max(0, Number.parseInt(seconds, 10) * 1000 - KEEP_ALIVE_HINT_MARGIN_MS);
    }
  }
  return undefined;
}
