/**
 * The local gateway: the same vault, admin and router code as the Lambda functions, behind a
 * node:http server on loopback, over the embedded backend (SQLite, an emulated root key and a
 * local pepper: Node.js only) or, with `backend: 'moto'`, the AWS adapters against moto.
 */
import { randomUUID } from 'node:crypto';
import { createServer, IncomingMessage, Server, ServerResponse, STATUS_CODES } from 'node:http';
import { setMaxListeners } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import { ProviderHttpClient } from '../lambda/adapters/provider-http';
import { createAdminApp } from '../lambda/core/admin-app';
import type { CellConfig } from '../lambda/core/cell-config';
import { ApiError, errorResponse, HttpRequest, HttpResponse, REQUEST_ID_HEADER, withRequestId } from '../lambda/core/http';
import { errorFields, jsonLogger, Logger } from '../lambda/core/logger';
import { CircuitBreaker } from '../lambda/core/routing/circuit-breaker';
import { createRouterApp } from '../lambda/core/router/router-app';
import type { ResponseSink } from '../lambda/core/router/response-sink';
import { createVaultApp } from '../lambda/core/vault-app';
import type { BackendKind, GatewayBackend, LocalProvider } from './backends/backend';
import { startEmbeddedBackend } from './backends/embedded-backend';
import { startMotoBackend } from './backends/moto-backend';
import { localAudit } from './local-audit';

export type { BackendKind, LocalProvider } from './backends/backend';

export interface LocalGatewayOptions {
  readonly region?: string;
  /** @default 8787; 0 picks a free port */
  readonly port?: number;
  readonly providers: Readonly<Record<string, LocalProvider>>;
  /** Keep state in this directory across restarts; default: in memory only. */
  readonly stateDir?: string;
  /** @default 'embedded' */
  readonly backend?: BackendKind;
  /** Embedded backend: fsync every commit (survives power loss as well as a killed process). @default false */
  readonly syncFull?: boolean;
  readonly maxRequestBytes?: number;
  readonly requestDeadlineMs?: number;
  readonly log?: Logger;
}

export interface LocalGateway {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly backend: BackendKind;
  readonly config: CellConfig;
  readonly restoredItems: number;
  /** The AWS emulator (moto backend only), e.g. for the AWS CLI's --endpoint-url. */
  readonly awsEndpoint?: string;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
/**
 * Longest wait at stop for the end stage of requests in flight (cut requests finish in
 * milliseconds; this bounds one stuck on something that ignores its abort), well inside the
 * lifecycle's grace period (lifecycle.ts).
 */
const STOP_DRAIN_MS = 3_000;

export async function startLocalGateway(opts: LocalGatewayOptions): Promise<LocalGateway> {
  const log = opts.log ?? jsonLogger('local-gateway');
  const audit = localAudit(opts.stateDir, log);
  // Requests whose handler is still running: stop() waits for them (bounded) before the store
  // closes, and a request alone in flight commits its writes without waiting for the turn's end.
  let inFlight = 0;
  const backendOptions = {
    soleRequest: () => inFlight <= 1,
    region: opts.region ?? 'eu-central-1',
    providers: opts.providers,
    stateDir: opts.stateDir,
    maxRequestBytes: opts.maxRequestBytes,
    requestDeadlineMs: opts.requestDeadlineMs ?? 120_000,
    syncFull: opts.syncFull,
    log,
    auditTrail: audit.trail,
  };
  const backend: GatewayBackend = opts.backend === 'moto' ? await startMotoBackend(backendOptions) : await startEmbeddedBackend(backendOptions);
  let server: Server | undefined;
  try {
    const { config, store, pepper, dataKeys } = backend;
    const onError = (err: unknown) => log.error('unexpected error', errorFields(err));
    // Bedrock locally: API-key targets in the gateway's region (no role to sign with).
    const providers = new ProviderHttpClient({ bedrock: { region: backendOptions.region } });
    const vault = createVaultApp({ config, store, pepper, dataKeys, usage: backend.usageRecords, audit, onError });
    // One process holds the root key here, so the operator's key-lifecycle commands run in it.
    const admin = createAdminApp({ config, store, pepper, pepperRotator: backend.pepperRotator, audit, onError, keyLifecycle: dataKeys });
    const router = createRouterApp({
      config,
      store: backend.routerStore,
      pepper,
      dataKeys,
      providers,
      breaker: new CircuitBreaker(),
      // The same budgets, rate limits and allowlists as the deployed router.
      governance: backend.governance,
      cache: backend.responseCache,
      log,
    });

    let drained: (() => void) | undefined;
    const requestDone = () => {
      if (--inFlight === 0) drained?.();
    };
    server = createServer((req, res) => {
      inFlight++;
      // One id per request, made here so that every answer names it, a failure's as well; the
      // apps and the router take it from the request (requestIdOf).
      const requestId = randomUUID();
      void handle(req, res, requestId).then(requestDone, (err) => {
        requestDone();
        log.error('local gateway error', { requestId, ...errorFields(err) });
        if (!res.headersSent) send(res, errorResponse(err, 'openai', requestId), requestId);
        else res.end();
      });
    });
    // Clients pool connections for longer than node's 5 s default (SDKs reuse a socket after a
    // pause and fail with "other side closed" when the server dropped it just then).
    server.keepAliveTimeout = 65_000;
    server.headersTimeout = 66_000;
    server.on('clientError', refuseUnparsed);

    const handle = async (req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> => {
      const started = Date.now();
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      const body = await readBody(req, config.maxRequestBytes + 1);
      const remote = req.socket.remoteAddress;
      const httpReq: HttpRequest = {
        method: req.method ?? 'GET',
        path,
        headers: stringHeaders(req),
        body,
        query: q < 0 ? NO_QUERY : Object.fromEntries(new URLSearchParams(url.slice(q + 1))),
        sourceIp: remote?.startsWith('::ffff:') ? remote.slice(7) : remote,
        iamCaller: 'local-operator',
        requestId,
        signal: clientGoneSignal(res),
      };
      if (path === '/healthz') return send(res, { status: 200, headers: { 'content-type': 'application/json' }, body: '{"ok":true}' }, requestId);
      if (path.startsWith('/v1/')) {
        // The router writes its own line per request (ids, timings, cost; no secrets). Its end
        // stage (settle, usage record) runs after the last byte. On the embedded store those are
        // synchronous commits of a few tens of microseconds, so the response is completed only
        // after them: a request the client saw answered has its usage record on disk. On moto
        // (network round trips) the response completes first, as in Lambda.
        const sink = nodeSink(res, { holdEndUntilDone: backend.kind === 'embedded' });
        try {
          await router(httpReq, sink);
        } finally {
          sink.done();
        }
        return;
      }
      let out: HttpResponse;
      if (/^\/(vault|admin|console)(\/|$)/.test(path)) {
        // The console's static pages are served by the vault app, as on the deployed cell.
        const app = path.startsWith('/admin') ? admin : vault;
        out = await app(httpReq);
        if (httpReq.method !== 'GET' && out.status < 400) await backend.persist();
      } else {
        out = errorResponse(new ApiError(404, 'not_found', `No route ${httpReq.method} ${path}.`));
      }
      const { res: answer } = withRequestId(httpReq, out);
      send(res, answer);
      log.info('request', { requestId, method: httpReq.method, path: routeLabel(path), status: answer.status, latencyMs: Date.now() - started });
    };

    await new Promise<void>((ok, fail) => {
      server!.once('error', fail);
      server!.listen(opts.port ?? 8787, HOST, () => ok());
    });
    const { port } = server.address() as AddressInfo;
    const running = server;
    return {
      url: `http://${HOST}:${port}`,
      backend: backend.kind,
      config,
      restoredItems: backend.restoredItems,
      awsEndpoint: backend.awsEndpoint,
      async stop() {
        await new Promise<void>((ok) => {
          running.close(() => ok());
          running.closeAllConnections();
        });
        // The requests just cut (their clients are gone, their upstream calls aborted) finish their
        // end stage, settle of what was used and usage record, before the store closes under them.
        if (inFlight > 0) {
          await new Promise<void>((ok) => {
            const timer = setTimeout(ok, STOP_DRAIN_MS);
            drained = () => {
              clearTimeout(timer);
              ok();
            };
          });
        }
        // Kept-alive provider connections end with the gateway.
        providers.close();
        await backend.stop();
      },
    };
  } catch (err) {
    server?.close();
    await backend.stop();
    throw err;
  }
}

/**
 * A request node's HTTP parser refused (malformed, headers too large, too slow to arrive) never
 * reaches a handler. Answered as node would (same status, only when no answer on the connection
 * has started, then the connection is closed), but with the request-id header and an error body
 * like every other answer.
 */
function refuseUnparsed(err: NodeJS.ErrnoException, socket: Socket): void {
  const current = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
  if (socket.writable && !current?.headersSent) {
    const [status, code, message] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'headers_too_large', 'The request headers are too large.']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'request_timeout', 'The request did not arrive in time.']
          : [400, 'malformed_request', 'The request is not valid HTTP/1.1.'];
    const requestId = randomUUID();
    const out = errorResponse(new ApiError(status, code, message), 'openai', requestId);
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n`;
    for (const [name, value] of Object.entries(out.headers)) head += `${name}: ${value}\r\n`;
    socket.write(`${head}${REQUEST_ID_HEADER}: ${requestId}\r\ncontent-length: ${Buffer.byteLength(out.body)}\r\nconnection: close\r\n\r\n${out.body}`);
  }
  socket.destroy(err);
}

/** Path without ids, for log lines. */
function routeLabel(path: string): string {
  return path.replace(/\/(tenants|secrets|tokens)\/[^/]+/g, '/$1/:id');
}

const NO_QUERY: Readonly<Record<string, string>> = Object.freeze({});

/**
 * The request's single-valued headers (node gives their names in lower case already). node joins
 * a repeated header into one string (or keeps the first, for those that cannot repeat), except
 * Set-Cookie, a list, which no request handler reads: without it node's own object is the answer,
 * with no copy per request.
 */
export function stringHeaders(req: IncomingMessage): Record<string, string> {
  const headers = req.headers;
  if (headers['set-cookie'] === undefined) return headers as Record<string, string>;
  const out: Record<string, string> = {};
  for (const name in headers) {
    const v = headers[name];
    if (typeof v === 'string') out[name] = v;
  }
  return out;
}

/**
 * Reads at most `limit` bytes; a longer body is cut there, and the size check answers 413.
 *
 * A request without Content-Length and Transfer-Encoding has no body (RFC 9112 6.3; node's parser
 * reads none), nor has one of length 0: nothing to wait for. A body that came with its headers
 * (the usual small request) is in the request's buffer one microtask after 'request' (node hands
 * over what it parsed from that read before the message-complete step): when all of its
 * Content-Length bytes are there, it is taken in one read, without the stream's flowing mode and
 * its ticks. node's parser enforces that length (two of them, a list, or one beside
 * Transfer-Encoding are refused before 'request'), so those bytes are the whole body. Anything
 * else (chunked, a body still on its way) is read through the events.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  const headers = req.headers;
  const length = headers['content-length'];
  if (length === '0' || (length === undefined && headers['transfer-encoding'] === undefined)) return NO_BODY;
  return Promise.resolve().then(() => {
    if (length !== undefined && !req.destroyed && req.readableLength > 0 && req.readableLength === Number(length)) {
      const all = req.read() as Buffer;
      return all.toString('utf8', 0, Math.min(all.length, limit));
    }
    return readBodyEvents(req, limit);
  });
}
const NO_BODY: Promise<undefined> = Promise.resolve(undefined);

/** Events rather than an async iterator, and no copy for the usual one-chunk body. */
function readBodyEvents(req: IncomingMessage, limit: number): Promise<string | undefined> {
  // Destroyed before its listeners came (the client went between 'request' and now): its 'close' is gone.
  if (req.destroyed) return Promise.reject(new Error('the request body ended early'));
  return new Promise((resolve, reject) => {
    let first: Buffer | undefined;
    let more: Buffer[] | undefined;
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      if (size >= limit) return; // drain without keeping
      if (first === undefined) first = chunk;
      else (more ??= [first]).push(chunk);
      size += chunk.length;
    });
    let ended = false;
    req.on('end', () => {
      ended = true;
      if (first === undefined || size === 0) return resolve(undefined);
      const all = more ? Buffer.concat(more, size) : first;
      resolve(all.toString('utf8', 0, Math.min(size, limit)));
    });
    req.on('error', reject);
    // A connection that closes mid-body (without an error) must not leave the request waiting.
    req.on('close', () => {
      if (!ended) reject(new Error('the request body ended early'));
    });
  });
}

/**
 * A held answer's headers as node's flat [name, value, ...] list with its content-length: no
 * header object copied per response (writeHead still validates every name and value).
 */
function rawHeaders(headers: Readonly<Record<string, string>>, contentLength: number): string[] {
  const out: string[] = [];
  for (const name in headers) {
    // Ours is the only framing: a second length, or a Transfer-Encoding beside it, would make the
    // answer ambiguous to whatever reads it (node writes both as given).
    if (name.length === 14 && name.toLowerCase() === 'content-length') continue;
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') continue;
    out.push(name, headers[name]);
  }
  out.push('content-length', String(contentLength));
  return out;
}

/** An answer of the gateway itself; with `requestId`, its header is set too. */
function send(res: ServerResponse, out: HttpResponse, requestId?: string): void {
  res.writeHead(out.status, requestId === undefined ? out.headers : { ...out.headers, [REQUEST_ID_HEADER]: requestId });
  res.end(out.body);
}

/** The client-gone watch of one connection, kept on its socket. */
interface ConnectionWatch {
  readonly controller: AbortController;
  /** The latest response on the connection; responses on one connection finish in order. */
  last: ServerResponse;
}
const WATCH = Symbol('sovereign-router.client-gone');
const CLIENT_GONE = 'client disconnected';

/**
 * Fires when the client's connection closes before the response finished (a disconnect, an
 * aborted SDK call): the router then aborts its upstream call and settles what was used.
 * One signal per connection, not per request: an AbortSignal costs several microseconds to make
 * (node sets its prototype on a fresh EventTarget), and a kept-alive connection carries many
 * requests. It aborts when the connection closes while its latest response (so any, as a
 * connection's responses finish in order) is unfinished; the connection then carries no further
 * request. A close after the last response finished cuts nothing. Listeners are the router's,
 * removed when its request ends, so none pile up over a connection's life (20,000 requests on one
 * kept-alive connection grow the heap no more than as many on fresh connections).
 * The signal is the connection's, not the request's: once a later request on it is cut, it reads
 * aborted for the earlier ones too. So a handler reads it only until its own answer finished (the
 * router: its upstream calls and stream loop; on the embedded backend its whole run, as the answer
 * ends after it; on moto only the end stage runs later, and that reads no signal).
 */
export function clientGoneSignal(res: ServerResponse): AbortSignal {
  // The request's socket: a pipelined request's response gets its socket only when its turn comes.
  const socket = res.req.socket as Socket & { [WATCH]?: ConnectionWatch };
  if (socket.destroyed) return AbortSignal.abort(new Error(CLIENT_GONE));
  let watch = socket[WATCH];
  if (watch === undefined) {
    const w: ConnectionWatch = { controller: new AbortController(), last: res };
    // Pipelined requests in flight on one connection each add a listener: no leak warning for them.
    setMaxListeners(0, w.controller.signal);
    socket.once('close', () => {
      if (!w.last.writableFinished) w.controller.abort(new Error(CLIENT_GONE));
    });
    socket[WATCH] = watch = w;
  }
  watch.last = res;
  return watch.controller.signal;
}

/**
 * The router's sink on a node:http response. A streamed answer (text/event-stream) has its
 * headers and chunks written as they come, those of one event-loop turn in one write (headers and
 * a first chunk that arrived with the provider's headers leave together). Any other answer is one JSON body: it is kept until its end and sent in one write
 * with a Content-Length (one syscall instead of header, chunk and terminator). With
 * `holdEndUntilDone` the final `end` waits for `done()` (after the router's records).
 */
export function nodeSink(res: ServerResponse, opts: { holdEndUntilDone?: boolean } = {}): ResponseSink & { done(): void } {
  let started = false;
  let held: { status: number; headers: Record<string, string>; chunks: string[] } | undefined;
  // Stream chunks written in one turn of the event loop (the events of one upstream read) leave
  // in one write: corked at the first, uncorked when the turn's synchronous work is done.
  let corked = false;
  const uncork = () => {
    if (!corked) return;
    corked = false;
    res.uncork();
  };
  const corkForThisTurn = () => {
    if (corked) return;
    corked = true;
    res.cork();
    process.nextTick(uncork);
  };
  const finish = () => {
    uncork();
    if (held) {
      const body = held.chunks.length === 1 ? held.chunks[0] : held.chunks.join('');
      res.writeHead(held.status, rawHeaders(held.headers, Buffer.byteLength(body)));
      held = undefined;
      res.end(body);
    } else if (!res.writableEnded) {
      res.end();
    }
  };
  return {
    start(status, headers) {
      if (started) throw new Error('response already started');
      started = true;
      if (!/^text\/event-stream/i.test(headers['content-type'] ?? '')) {
        held = { status, headers, chunks: [] };
        return;
      }
      // Flushed at the end of this turn, with the first chunk if it is already here.
      corkForThisTurn();
      res.writeHead(status, headers);
      res.flushHeaders();
    },
    write(chunk) {
      if (held) return void held.chunks.push(chunk);
      corkForThisTurn();
      res.write(chunk);
    },
    end() {
      if (!opts.holdEndUntilDone) finish();
    },
    done() {
      finish();
    },
  };
}
