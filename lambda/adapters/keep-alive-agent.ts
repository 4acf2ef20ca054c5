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
  readonly socketPath?: unknown;
  readonly [key: string]: unknown;
}

/** The parts of node's agent that the hand-over uses: its pool, by name. */
interface Pool {
  readonly freeSockets: Record<string, Socket[] | undefined>;
  readonly sockets: Record<string, Socket[] | undefined>;
  readonly options: Record<string, unknown>;
  getName(options: object): string;
  reuseSocket(socket: Socket, req: ClientRequest): void;
}

type AddRequest = (this: HttpAgent, req: ClientRequest, options: RequestOptions) => void;
const httpAddRequest = (HttpAgent.prototype as unknown as { addRequest: AddRequest }).addRequest;
const httpsAddRequest = (HttpsAgent.prototype as unknown as { addRequest: AddRequest }).addRequest;
const nodeKeepSocketAlive = HttpAgent.prototype.keepSocketAlive as unknown as (this: HttpAgent, socket: Socket) => boolean;

export class KeepAliveHttpAgent extends HttpAgent {
  private readonly names = new Map<string, string>();
  constructor(options?: HttpAgentOptions) {
    super(options);
  }
  addRequest(req: ClientRequest, options: RequestOptions): void {
    if (!handOverIdle(this, this.names, req, options)) httpAddRequest.call(this, req, options);
  }
  override keepSocketAlive(socket: Socket): boolean {
    return keepSocketAlive(this, socket);
  }
}

export class KeepAliveHttpsAgent extends HttpsAgent {
  private readonly names = new Map<string, string>();
  constructor(options?: HttpsAgentOptions) {
    super(options);
  }
  addRequest(req: ClientRequest, options: RequestOptions): void {
    if (!handOverIdle(this, this.names, req, options)) httpsAddRequest.call(this, req, options);
  }
  override keepSocketAlive(socket: Socket): boolean {
    return keepSocketAlive(this, socket);
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
  // Only what the transport sends: host and port, its Host header in the raw list.
  if (!FAST_REUSE || typeof options !== 'object' || options.socketPath || req.getHeader('host') !== undefined) return false;
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
