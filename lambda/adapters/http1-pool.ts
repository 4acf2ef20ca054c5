/**
 * Kept-alive HTTP/1.1 connections to providers, each with node's own response parser (llhttp, as
 * node's ClientRequest uses it), without node's per-request client machinery: node:http's
 * ClientRequest checks and copies an options object, keeps a header map, takes a parser from node's
 * list and adds and removes five socket listeners per request, and makes an IncomingMessage and the
 * agent's free/reuse events (a call with its answer read: about 24 µs of CPU against 18 µs here, in
 * a warm in-process loop on loopback; about 20 µs less added p50 in the gateway, interleaved A/B).
 * This connection keeps one parser and one set of listeners for its whole life, and a call is one
 * head string, one write and the parser's callbacks.
 *
 * What is node's and unchanged: the parser (framing, chunked coding, Content-Length beside
 * Transfer-Encoding, header size limit, strict mode: no lenient flags), TLS (tls.connect, node's
 * certificate and host checks) and sockets. What is ours, kept narrow: the request head (names
 * must be tokens, values printable ASCII, the path printable ASCII: anything else is refused before
 * a byte is sent), and which answer belongs to which request: a connection carries one request at
 * a time, and any byte that is not part of the answer to the request in flight (after its end, or
 * on an idle connection) closes the connection, so no answer is ever read as the next request's.
 * Redirects are not followed (nothing here reads Location). 1xx answers are skipped, as node does;
 * a 101 (upgrade) is a failed connection.
 *
 * The parser is node 20's (`_http_common`, the module node's http client is built on); other
 * versions use node:http (node-http-transport.ts), as keep-alive-agent.ts does.
 */
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect, type TLSSocket } from 'node:tls';
import { Readable } from 'node:stream';
import type { CancelSignal } from '../core/routing/fallback';
import { TimeoutQueue, type QueuedTimeout } from '../core/timeout-queue';

/** The node major version whose parser interface (callback slots and their arguments) this was checked against. */
const CHECKED_NODE_MAJOR = 20;

export interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenientFlags: number): void;
  execute(data: Buffer): number | object;
  finish(): object | undefined;
  close(): void;
  [slot: number]: unknown;
}
export interface ParserModule {
  readonly HTTPParser: {
    new (): Parser;
    readonly RESPONSE: number;
    readonly kOnMessageBegin: number;
    readonly kOnHeaders: number;
    readonly kOnHeadersComplete: number;
    readonly kOnBody: number;
    readonly kOnMessageComplete: number;
    readonly kOnExecute: number;
  };
}

function parserModule(): ParserModule | undefined {
  if (Number(process.versions.node.split('.')[0]) !== CHECKED_NODE_MAJOR) return undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const m = require('_http_common') as Partial<ParserModule>;
    const P = m.HTTPParser;
    if (!P || typeof P.RESPONSE !== 'number' || typeof P.kOnHeadersComplete !== 'number') return undefined;
    return behavesAsChecked(m as ParserModule) ? (m as ParserModule) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The parser's callbacks as this module reads them, checked once on two answers: a chunked one
 * with a repeated header (status, head as a flat list, keep-alive, body bytes as Buffers, end of
 * message) and one with Content-Length beside Transfer-Encoding, which must be refused with an
 * HPE_ code. Any difference: the pool is not used (node:http is).
 */
export function behavesAsChecked(m: ParserModule): boolean {
  const P = m.HTTPParser;
  const parser = new P();
  try {
    const seen: string[] = [];
    parser.initialize(P.RESPONSE, {}, 0, 0);
    parser[P.kOnMessageBegin] = () => seen.push('begin');
    parser[P.kOnHeaders] = () => seen.push('partial');
    parser[P.kOnHeadersComplete] = (major: unknown, minor: unknown, headers: unknown, _m: unknown, _u: unknown, status: unknown, _s: unknown, upgrade: unknown, keepAlive: unknown) => {
      seen.push(`head ${String(major)}.${String(minor)} ${status === 201 ? 201 : '?'} ${JSON.stringify(headers)} ${String(upgrade)} ${String(keepAlive)}`);
      return 0;
    };
    parser[P.kOnBody] = (b: unknown) => seen.push(`body ${Buffer.isBuffer(b) ? b.toString('latin1') : '?'}`);
    parser[P.kOnMessageComplete] = () => seen.push('end');
    const ok = parser.execute(Buffer.from('HTTP/1.1 201 Created\r\nX-A: 1\r\nx-a: 2\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n', 'latin1'));
    const expected = ['begin', 'head 1.1 201 ["X-A","1","x-a","2","transfer-encoding","chunked"] false true', 'body hi', 'end'];
    if (typeof ok !== 'number' || JSON.stringify(seen) !== JSON.stringify(expected)) return false;
    const bad = parser.execute(Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n', 'latin1'));
    return typeof bad !== 'number' && parseErrorCode(bad) !== 'HPE_ERROR';
  } finally {
    parser.close();
  }
}
const PARSER = parserModule();

/** True when this node's parser is the one checked (node 20): Http1Pool works only then. */
export const HTTP1_POOL_AVAILABLE = PARSER !== undefined;

/** A call's failures, as node-http-transport.ts names them. */
export type Http1Failure = 'first_byte_timeout' | 'aborted' | 'connection';

/** The first-byte timer's destroy, told apart from a broken socket. */
export class FirstByteTimeout extends Error {}
/** A destroy caused by the caller's signal. */
export class Aborted extends Error {}
/** A protocol violation of the server (a parse error, bytes no request asked for, an upgrade). */
class Violation extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}
/** The connection closed before the answer was complete, without an error of its own. */
const HANG_UP = 'ECONNRESET';

export interface Http1Origin {
  readonly secure: boolean;
  /** Without an IPv6 literal's brackets. */
  readonly hostname: string;
  /** @default - the scheme's */
  readonly port?: number;
}

export interface Http1Request {
  /** From requestHead. */
  readonly head: string;
  readonly body?: string;
  readonly signal: CancelSignal;
  readonly firstByteTimeoutMs: number;
}

export interface Http1Answer {
  readonly status: number;
  /** As received: [name, value, ...]. */
  readonly rawHeaders: string[];
  /**
   * The whole body, when it was all here by the end of the read that brought the head (the usual
   * small answer): no stream is made for it, and the connection is already free for the next call.
   */
  readonly whole?: readonly Buffer[];
  /** Otherwise the body as it arrives; `complete` once every byte of it is here. Destroying it before then closes the connection. */
  readonly body?: ResponseBody;
}

const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;
const REQUEST_PATH = /^\/[\x21-\x7e]*$/;
/** Headers only the pool writes (by name, in any case). */
const OURS: ReadonlySet<string> = new Set(['host', 'content-length', 'transfer-encoding', 'connection']);
/** Reads buffered per answer before the socket is paused (node's stream default). */
const HIGH_WATER_MARK = 64 * 1024;

/**
 * The request head: Host first, then the caller's headers (its Host, Connection and framing
 * headers are not sent: ours are the only ones), Connection, and the body's length. Undefined when
 * a name, a value or the path is not one this sends (the caller refuses the call before any byte
 * goes out): names must be tokens, values and the path printable ASCII (stricter than node: no
 * obs-text, so the head is the same bytes in any encoding).
 */
export function requestHead(method: 'GET' | 'POST', path: string, host: string, headers: Readonly<Record<string, string>>, contentLength: number | undefined): string | undefined {
  if (!REQUEST_PATH.test(path) || !HEADER_VALUE.test(host)) return undefined;
  let head = `${method} ${path} HTTP/1.1\r\nhost: ${host}\r\n`;
  for (const name in headers) {
    if (OURS.has(name.toLowerCase())) continue;
    const value = headers[name];
    if (typeof value !== 'string' || !HTTP_TOKEN.test(name) || !HEADER_VALUE.test(value)) return undefined;
    head += `${name}: ${value}\r\n`;
  }
  head += contentLength === undefined ? 'connection: keep-alive\r\n\r\n' : `connection: keep-alive\r\ncontent-length: ${contentLength}\r\n\r\n`;
  return head;
}

/** The answer's body: a node Readable fed by the connection's parser (backpressure pauses the socket). */
export class ResponseBody extends Readable {
  /** Every byte of the body arrived (the parser's end of message). */
  complete = false;
  constructor(private readonly conn: Http1Connection) {
    super({ highWaterMark: HIGH_WATER_MARK });
    // A failure reaches the reader through the stream (errored, the iterator, readText); one that
    // comes while nobody reads must not become an uncaught 'error' (node's IncomingMessage emits
    // none without a listener either).
    this.on('error', ignore);
  }
  override _read(): void {
    // Once complete, the connection may already carry another call: its socket is not this body's.
    if (!this.complete) this.conn.socket.resume();
  }
  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // Unread bytes may still be on the socket: it must not carry another request.
    this.conn.bodyClosed(this);
    callback(err);
  }
}

interface Exchange {
  readonly resolve: (a: Http1Answer) => void;
  readonly reject: (failure: Http1Failure, code?: string) => void;
  readonly signal: CancelSignal;
  readonly onAbort: () => void;
  timer?: QueuedTimeout;
  /** The answer's status and head, from the parser's end of head; the call is answered at the end of that read. */
  status?: number;
  rawHeaders?: string[];
  /** Body bytes parsed before the answer went to the caller. */
  early?: Buffer[];
  /** The answer went to the caller (whole, or with this stream). */
  answered?: boolean;
  body?: ResponseBody;
}

/** One kept-alive connection: one parser, one set of socket listeners, one request at a time. */
class Http1Connection {
  readonly socket: Socket;
  private readonly parser: Parser;
  private exchange?: Exchange;
  /** Header lines that came before the end of the head in more than one read (the parser's slow path). */
  private partial: string[] = [];
  private informational = false;
  private keepAlive = false;
  private timeoutMs: number;
  dead = false;

  constructor(
    private readonly pool: Http1Pool,
    readonly key: string,
    origin: Http1Origin,
    sessions: Map<string, Buffer>,
    ca: string | undefined,
  ) {
    const P = PARSER!.HTTPParser;
    const host = origin.hostname;
    if (origin.secure) {
      const servername = isIP(host) ? undefined : host;
      // node's checks: a certificate chain the CA store trusts, for this host name (or IP address).
      const tls: TLSSocket = tlsConnect({ host, port: origin.port ?? 443, servername, session: sessions.get(key), noDelay: true, ...(ca === undefined ? {} : { ca }) } as ConnectionOptions);
      tls.on('session', (s: Buffer) => {
        if (sessions.size >= 256) sessions.clear();
        sessions.set(key, s);
      });
      this.socket = tls;
    } else {
      this.socket = netConnect({ host, port: origin.port ?? 80, noDelay: true });
    }
    this.timeoutMs = pool.idleSocketMs;
    const socket = this.socket;
    socket.setKeepAlive(true, 1000);
    // An idle connection closes after this long without traffic; a busy one ignores it (the
    // first-byte timer and the caller's signal bound a call), as node's agent does.
    socket.setTimeout(this.timeoutMs);
    socket.on('timeout', () => {
      if (this.exchange === undefined) this.fail(undefined);
    });
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err: Error) => this.fail(err));
    socket.on('close', () => {
      this.fail(undefined);
      // Outside the parser's own calls: 'close' comes in a later tick than any destroy.
      this.parser.close();
    });

    const parser = new P();
    parser.initialize(P.RESPONSE, {}, 0, 0);
    parser[P.kOnMessageBegin] = () => this.onMessageBegin();
    parser[P.kOnHeaders] = (headers: string[]) => {
      for (const h of headers) this.partial.push(h);
    };
    parser[P.kOnHeadersComplete] = (_major: number, _minor: number, headers: string[] | undefined, _m: unknown, _u: unknown, status: number, _s: unknown, upgrade: boolean, keepAlive: boolean) =>
      this.onHeadersComplete(headers, status, upgrade, keepAlive);
    parser[P.kOnBody] = (b: Buffer) => this.onBody(b);
    parser[P.kOnMessageComplete] = () => this.onMessageComplete();
    this.parser = parser;
  }

  /** Sends one request; the connection is this call's until its answer's last byte. */
  send(req: Http1Request, resolve: Exchange['resolve'], reject: Exchange['reject']): void {
    const onAbort = (): void => this.fail(new Aborted());
    const ex: Exchange = { resolve, reject, signal: req.signal, onAbort };
    this.exchange = ex;
    ex.timer = this.pool.firstByte.add(req.firstByteTimeoutMs, () => this.fail(new FirstByteTimeout()));
    req.signal.addEventListener('abort', onAbort, { once: true });
    this.socket.write(req.body === undefined ? req.head : req.head + req.body);
  }

  private onData(d: Buffer): void {
    if (this.dead) return;
    const ex = this.exchange;
    // A number (bytes parsed) or node's parse error (checked by type: an Error of another realm in tests).
    const ret = this.parser.execute(d);
    if (typeof ret !== 'number') this.fail(new Violation(parseErrorCode(ret)));
    // The head came in this read and the body is still on its way: the caller gets it as a stream.
    else if (ex !== undefined && ex.status !== undefined && !ex.answered) this.answerWithStream(ex);
  }

  /** Hands the caller the answer with its body as a stream, fed from here on (what came already first). */
  private answerWithStream(ex: Exchange): ResponseBody {
    const body = new ResponseBody(this);
    ex.body = body;
    ex.answered = true;
    if (ex.early !== undefined) for (const b of ex.early) body.push(b);
    ex.early = undefined;
    ex.resolve({ status: ex.status!, rawHeaders: ex.rawHeaders!, body });
    return body;
  }

  private onEnd(): void {
    if (this.dead) return;
    // A body that runs to the connection's end (no length, no chunking) ends here.
    const ret = this.parser.finish();
    this.fail(ret === undefined ? undefined : new Violation(parseErrorCode(ret)));
  }

  private onMessageBegin(): void {
    // An answer nobody asked for: after the last one ended, or on an idle connection.
    const ex = this.exchange;
    if (!this.dead && (ex === undefined || (ex.body !== undefined && !this.informational))) this.fail(new Violation('UNSOLICITED_RESPONSE'));
  }

  private onHeadersComplete(headers: string[] | undefined, status: number, upgrade: boolean, keepAlive: boolean): number {
    const ex = this.exchange;
    let raw = headers;
    if (raw === undefined) {
      raw = this.partial;
      this.partial = [];
    }
    if (this.dead || ex === undefined) return 0;
    if (upgrade || status === 101) {
      this.fail(new Violation('UPGRADE'));
      return 0;
    }
    if (status < 200) {
      // 100 Continue, 103 Early Hints...: the answer follows.
      this.informational = true;
      return 0;
    }
    this.pool.firstByte.remove(ex.timer!);
    const hint = keepAliveHintMs(raw);
    this.keepAlive = keepAlive && (hint === undefined || hint > 0);
    if (hint !== undefined && hint > 0) {
      const t = Math.min(this.pool.idleSocketMs, hint);
      if (t !== this.timeoutMs) {
        this.timeoutMs = t;
        this.socket.setTimeout(t);
      }
    }
    // Answered at the end of this read (onData), or here at the end of the message if it ends in it.
    ex.status = status;
    ex.rawHeaders = raw;
    return 0;
  }

  private onBody(b: Buffer): void {
    const ex = this.exchange;
    if (this.dead || ex === undefined) return;
    const body = ex.body;
    if (body === undefined) (ex.early ??= []).push(b);
    else if (!body.push(b)) this.socket.pause();
  }

  private onMessageComplete(): void {
    this.partial = []; // trailers: not read
    if (this.informational) {
      this.informational = false;
      return;
    }
    const ex = this.exchange;
    if (this.dead || ex === undefined || ex.status === undefined) return;
    // Every byte of the answer is off the socket (buffered in the body): the connection is free.
    this.exchange = undefined;
    const body = ex.body;
    if (body === undefined) {
      ex.answered = true;
      ex.resolve({ status: ex.status, rawHeaders: ex.rawHeaders!, whole: ex.early ?? [] });
      ex.early = undefined;
    } else {
      body.complete = true;
      body.push(null);
    }
    ex.signal.removeEventListener('abort', ex.onAbort);
    if (this.keepAlive && !this.socket.destroyed) this.pool.idle(this);
    else this.fail(undefined);
  }

  /** The body was destroyed (cancelled, read to its end, or failed). */
  bodyClosed(body: ResponseBody): void {
    if (!body.complete && this.exchange?.body === body) this.fail(new Aborted());
  }

  /** Ends the connection; a call in flight fails with what `err` says (undefined: the connection closed). */
  fail(err: Error | undefined): void {
    if (this.dead) return;
    this.dead = true;
    this.pool.forget(this);
    const ex = this.exchange;
    this.exchange = undefined;
    this.socket.destroy();
    if (ex === undefined) return;
    ex.signal.removeEventListener('abort', ex.onAbort);
    if (ex.timer) this.pool.firstByte.remove(ex.timer);
    const code = err === undefined ? HANG_UP : err instanceof Violation ? err.code : (err as { code?: unknown }).code;
    // A failure after the head (in the read that brought it): the answer stands, its body fails, as on node:http.
    if (ex.status !== undefined && !ex.answered) this.answerWithStream(ex);
    if (ex.body === undefined) {
      if (err instanceof FirstByteTimeout) ex.reject('first_byte_timeout');
      else if (err instanceof Aborted || ex.signal.aborted) ex.reject('aborted');
      else ex.reject('connection', typeof code === 'string' ? code : undefined);
    } else if (!ex.body.destroyed) {
      ex.body.destroy(err instanceof Aborted ? err : Object.assign(new Error('connection lost'), { code }));
    }
  }
}

/**
 * Idle connections per origin (last used first), a new connection when none is idle. Connections
 * are not limited in number (node's agent default), nor shared between calls in flight.
 */
export class Http1Pool {
  readonly firstByte = new TimeoutQueue();
  private readonly free = new Map<string, Http1Connection[]>();
  private readonly open = new Set<Http1Connection>();
  private readonly sessions = new Map<string, Buffer>();

  /**
   * @param idleSocketMs how long a kept-alive connection may sit unused (a shorter Keep-Alive hint wins).
   * @param trust.ca certificates trusted instead of node's CA store (tests)
   * @default - node's CA store
   */
  constructor(
    readonly idleSocketMs: number,
    private readonly trust: { readonly ca?: string } = {},
  ) {
    if (!PARSER) throw new Error('Http1Pool needs node 20');
  }

  /** One call; rejects with the failure only (no node message, which would quote host and port). */
  request(origin: Http1Origin, req: Http1Request): Promise<Http1Answer> {
    return new Promise<Http1Answer>((resolve, reject) => {
      const key = `${origin.secure ? 's' : 'p'}\n${origin.hostname}\n${origin.port ?? ''}`;
      const list = this.free.get(key);
      let conn = list?.pop();
      while (conn !== undefined && (conn.dead || conn.socket.destroyed)) conn = list?.pop();
      if (conn === undefined) {
        conn = new Http1Connection(this, key, origin, this.sessions, this.trust.ca);
        this.open.add(conn);
      } else {
        conn.socket.ref();
      }
      conn.send(req, resolve, (failure, code) => reject(Object.assign(new Error(failure), { failure, code })));
    });
  }

  /** Back among the idle ones (its answer's last byte is in); an idle connection keeps no process alive (node's agent unrefs it too). */
  idle(conn: Http1Connection): void {
    conn.socket.unref();
    let list = this.free.get(conn.key);
    if (list === undefined) this.free.set(conn.key, (list = []));
    list.push(conn);
  }

  forget(conn: Http1Connection): void {
    this.open.delete(conn);
    const list = this.free.get(conn.key);
    if (list === undefined) return;
    const i = list.indexOf(conn);
    if (i !== -1) list.splice(i, 1);
    if (list.length === 0) this.free.delete(conn.key);
  }

  /** Closes every connection (tests, shutdown); calls in flight fail as lost connections. */
  close(): void {
    for (const conn of [...this.open]) conn.fail(undefined);
  }
}

function ignore(): void {}

/** llhttp's error code (HPE_...), never its reason or the bytes it quotes. */
function parseErrorCode(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^HPE_[A-Z_]{1,40}$/.test(code) ? code : 'HPE_ERROR';
}

/** The server's `Keep-Alive: timeout=N` less node's margin of one second (first such header, as node reads it). */
function keepAliveHintMs(raw: readonly string[]): number | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.length === 10 && name.toLowerCase() === 'keep-alive') {
      const seconds = /^timeout=(\d+)/.exec(raw[i + 1])?.[1];
      return seconds === undefined ? undefined : Math.max(0, Number.parseInt(seconds, 10) * 1000 - 1000);
    }
  }
  return undefined;
}
