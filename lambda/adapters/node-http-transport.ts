/**
 * The provider adapter's transport: node:http / node:https on kept-alive agents. It does what
 * global fetch did for the adapter at about a quarter of the CPU (no Request/Response objects,
 * no web streams, no AbortSignal.any chain): one request, the caller's signal and a first-byte
 * timer as the only cancellation, the response body read as node stream chunks (with
 * backpressure: the socket is paused while nobody reads). Redirects are never followed (node:http
 * does not follow them). Every failure is reported through the caller's `fail`, so no message
 * of node's (which quote host and port) can reach a log line.
 */
import { type Agent as HttpAgent, type ClientRequest, request as httpRequest, type IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { type Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { TextDecoder } from 'node:util';
import type { ProviderBody, ProviderHeaders } from '../core/router/provider-port';
import type { CancelSignal } from '../core/routing/fallback';
import { KeepAliveHttpAgent, KeepAliveHttpsAgent } from './keep-alive-agent';
import { Aborted, FirstByteTimeout, HTTP1_POOL_AVAILABLE, type Http1Answer, Http1Pool, requestHead } from './http1-pool';
import { TimeoutQueue } from '../core/timeout-queue';

/** Before the response headers: no headers in time, the caller's abort, a failed connection; after them: the body's. */
export type CallFailure = 'first_byte_timeout' | 'aborted' | 'connection' | 'body_aborted' | 'body_connection';

export interface HttpCall {
  readonly method: string;
  /** Lower-case names; Host, Content-Length and Transfer-Encoding are the transport's. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
  /** Cuts the call, before or after the response headers (the body then fails as 'aborted'). */
  readonly signal: CancelSignal;
  readonly firstByteTimeoutMs: number;
  /** The error to throw for a failure; its message must not quote the URL, a header or the body. */
  readonly fail: (failure: CallFailure, code?: string) => Error;
}

/** A provider URL, checked, in the parts node:http takes (provider-http.ts makes it once per endpoint). */
export interface HttpEndpoint {
  readonly url: URL;
  readonly secure: boolean;
  /** Without an IPv6 literal's brackets. */
  readonly hostname: string;
  /** @default - the scheme's */
  readonly port?: number;
  /** Path and query. */
  readonly path: string;
  /** The Host header: host, and the port unless it is the scheme's default. */
  readonly host: string;
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: ProviderHeaders;
  readonly body: ProviderBody;
}

/**
 * Idle kept-alive sockets are closed after this long (undici's default too); a shorter
 * `Keep-Alive: timeout=N` hint from the server wins (less one second), so a request is not sent
 * on a socket the server is about to close.
 */
const IDLE_SOCKET_MS = 4_000;

/** One-shot decodes (no stream state): UTF-8, a leading BOM dropped, as the iterator path's TextDecoder. */
const UTF8 = new TextDecoder();
/** A body that closed before its end without an error of its own (what the stream iterator reports). */
const PREMATURE_CLOSE = Object.freeze({ code: 'ERR_STREAM_PREMATURE_CLOSE' });


export class NodeHttpTransport {
  private readonly httpAgent: HttpAgent;
  private readonly httpsAgent: HttpsAgent;
  /** The calls' first-byte timeouts, on one timer (core/timeout-queue.ts). */
  private readonly firstByte = new TimeoutQueue();
  /** GET and POST on node 20: kept-alive connections with node's parser and no ClientRequest (http1-pool.ts). */
  private readonly pool?: Http1Pool;

  /**
   * @param idleSocketMs how long a kept-alive socket may sit unused. It is the agents' socket
   *   timeout, which node applies to free sockets only: a request waiting longer than this for
   *   its answer is not cut by it (the first-byte timer and the caller's signal do that).
   */
  constructor(idleSocketMs = IDLE_SOCKET_MS) {
    // node's agents, handing over an idle socket without node's per-request option copies (keep-alive-agent.ts).
    this.httpAgent = new KeepAliveHttpAgent({ keepAlive: true, timeout: idleSocketMs, scheduling: 'lifo' });
    this.httpsAgent = new KeepAliveHttpsAgent({ keepAlive: true, timeout: idleSocketMs, scheduling: 'lifo' });
    if (HTTP1_POOL_AVAILABLE) this.pool = new Http1Pool(idleSocketMs);
  }

  call(endpoint: HttpEndpoint, c: HttpCall): Promise<HttpAnswer> {
    if (c.signal.aborted) return Promise.reject(c.fail('aborted'));
    if (this.pool !== undefined && (c.method === 'POST' || c.method === 'GET')) return this.viaPool(this.pool, endpoint, c, c.method);
    const { body } = c;
    return new Promise<HttpAnswer>((resolve, reject) => {
      const secure = endpoint.secure;
      let req: ClientRequest;
      try {
        req = (secure ? httpsRequest : httpRequest)({
          hostname: endpoint.hostname,
          port: endpoint.port,
          path: endpoint.path,
          method: c.method,
          headers: headerList(endpoint.host, c.headers, body),
          agent: secure ? this.httpsAgent : this.httpAgent,
        });
      } catch (err) {
        // e.g. a header node refuses: its message would quote the header's name.
        reject(c.fail('connection', (err as { code?: string }).code));
        return;
      }
      let res: IncomingMessage | undefined;
      const onAbort = (): void => {
        if (res) res.destroy(new Aborted());
        else req.destroy(new Aborted());
      };
      const timer = this.firstByte.add(c.firstByteTimeoutMs, () => req.destroy(new FirstByteTimeout()));
      c.signal.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err: Error & { code?: unknown }) => {
        this.firstByte.remove(timer);
        if (res) return; // after the headers, the body reports it
        c.signal.removeEventListener('abort', onAbort);
        if (err instanceof FirstByteTimeout) reject(c.fail('first_byte_timeout'));
        else if (err instanceof Aborted || c.signal.aborted) reject(c.fail('aborted'));
        else reject(c.fail('connection', typeof err.code === 'string' ? err.code : undefined));
      });
      req.on('response', (r: IncomingMessage) => {
        this.firstByte.remove(timer);
        res = r;
        // 'close' comes once per response.
        r.on('close', () => c.signal.removeEventListener('abort', onAbort));
        resolve({ status: r.statusCode ?? 0, headers: new NodeHeaders(r), body: new NodeBody(decoded(r, r.rawHeaders), c, r) });
      });
      req.end(body);
    });
  }

  private viaPool(pool: Http1Pool, endpoint: HttpEndpoint, c: HttpCall, method: 'GET' | 'POST'): Promise<HttpAnswer> {
    const { body } = c;
    const head = requestHead(method, endpoint.path, endpoint.host, c.headers, body === undefined ? undefined : Buffer.byteLength(body));
    // A name or value node would refuse as well (its message would quote the header): nothing is sent.
    if (head === undefined) return Promise.reject(c.fail('connection', 'ERR_INVALID_CHAR'));
    return pool.request(endpoint, { head, body, signal: c.signal, firstByteTimeoutMs: c.firstByteTimeoutMs }).then(
      (a: Http1Answer): HttpAnswer => ({ status: a.status, headers: new RawListHeaders(a.rawHeaders), body: poolBody(a, c) }),
      (err: { failure?: CallFailure; code?: string }) => {
        throw c.fail(err.failure ?? 'connection', err.code);
      },
    );
  }

  /** Closes the kept-alive sockets (tests, shutdown). */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    this.pool?.close();
  }
}

/**
 * The request's headers as node's flat [name, value, ...] list, Host first and the body's length
 * last: node then writes them as given (still validating every name and value) instead of
 * keeping each in its header map through setHeader, and adds no Host of its own (this Host is
 * what it would add: the URL's host). Ours are the only Host and framing headers.
 */
function headerList(host: string, headers: Readonly<Record<string, string>>, body: string | undefined): string[] {
  const out = ['host', host];
  for (const name in headers) {
    if (name === 'host' || name === 'content-length' || name === 'transfer-encoding') continue;
    out.push(name, headers[name]);
  }
  if (body !== undefined) out.push('content-length', String(Buffer.byteLength(body)));
  return out;
}

/**
 * Response headers by lower-case name; a repeated header reads as its values joined by ', '
 * (node's rules: IncomingMessage.headers). That object is made only when a header is asked for:
 * node builds it on first use (a name match per header line), and a 2xx answer on the router's
 * path reads none before its last byte.
 */
class NodeHeaders implements ProviderHeaders {
  constructor(private readonly res: IncomingMessage) {}
  get(name: string): string | null {
    const v = (this.res.headers as IncomingHttpHeaders)[name.toLowerCase()];
    return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
  }
}

/**
 * NodeHeaders for an answer of the pool (a raw list, no IncomingMessage): node's header object is
 * made from the list on first use, by node's own rules (an IncomingMessage's _addHeaderLines), so
 * names and repeated values read exactly as on node:http.
 */
class RawListHeaders implements ProviderHeaders {
  private byName?: IncomingHttpHeaders;
  constructor(private readonly raw: string[]) {}
  get(name: string): string | null {
    if (this.byName === undefined) {
      const m = new IncomingMessage(null as unknown as Socket) as IncomingMessage & { _addHeaderLines(headers: string[], n: number): void };
      m._addHeaderLines(this.raw, this.raw.length);
      this.byName = m.headers;
    }
    const v = this.byName[name.toLowerCase()];
    return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
  }
}

/** A header's values from node's raw list (names as sent), joined by ', ' as node joins a repeated one. */
function rawHeader(raw: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i];
    if (n.length === name.length && n.toLowerCase() === name) value = value === undefined ? raw[i + 1] : `${value}, ${raw[i + 1]}`;
  }
  return value;
}

/**
 * The body as it arrives. Reading pulls from the socket; stopping early (break, cancel) destroys
 * the response, so the socket is not reused with unread bytes on it. A broken connection or the
 * caller's abort surfaces as the caller's typed error.
 */
class NodeBody implements ProviderBody {
  /** The response itself when it is read as it came (no decoder): its `complete` tells that every byte is here. */
  private readonly message?: Readable & { readonly complete: boolean };

  constructor(
    private readonly stream: Readable,
    private readonly c: Pick<HttpCall, 'signal' | 'fail'>,
    response: Readable & { readonly complete: boolean },
  ) {
    if (stream === response) this.message = response;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    try {
      for await (const chunk of this.stream as AsyncIterable<Buffer>) yield chunk;
    } catch (err) {
      throw this.failed(err);
    }
  }

  /**
   * A buffered answer through 'data'/'end' listeners and one decode at the end (the async
   * iterators above cost several promises per chunk). The cap is the iterator path's, exactly:
   * text longer than `maxChars` UTF-16 units. UTF-8 never has fewer bytes than the text has units,
   * so up to `maxChars` bytes nothing is counted; past that, the units are counted as they arrive.
   */
  readText(maxChars: number): Promise<string | undefined> {
    const stream = this.stream;
    if (this.message !== undefined && this.message.complete && !stream.destroyed) {
      // All of it arrived already (the usual small answer: headers and body in one socket read):
      // taken in this turn, so the caller goes on before node's end-of-message work (the socket
      // going back to the pool), which runs in the next ticks, instead of after it.
      const all = stream.read() as Buffer | null;
      const text = all === null ? '' : UTF8.decode(all);
      if (text.length <= maxChars) return Promise.resolve(text);
      stream.destroy();
      return Promise.resolve(undefined);
    }
    return new Promise<string | undefined>((resolve, reject) => {
      if (stream.destroyed) {
        reject(this.failed(stream.errored ?? PREMATURE_CLOSE));
        return;
      }
      let chunks: Buffer[] = [];
      let bytes = 0;
      let counting: TextDecoder | undefined;
      let text = '';
      const off = (): void => {
        stream.off('data', onData);
        stream.off('end', onEnd);
        stream.off('error', onError);
        stream.off('close', onClose);
      };
      const onData = (chunk: Buffer): void => {
        if (counting === undefined) {
          bytes += chunk.length;
          chunks.push(chunk);
          if (bytes <= maxChars) return;
          counting = new TextDecoder();
          text = counting.decode(Buffer.concat(chunks, bytes), { stream: true });
          chunks = [];
        } else {
          text += counting.decode(chunk, { stream: true });
        }
        if (text.length > maxChars) {
          off();
          stream.destroy(); // unread bytes stay on the socket: it must not be reused
          resolve(undefined);
        }
      };
      const onEnd = (): void => {
        off();
        if (counting !== undefined) resolve(text + counting.decode());
        else resolve(bytes === 0 ? '' : UTF8.decode(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, bytes)));
      };
      const onError = (err: unknown): void => {
        off();
        reject(this.failed(err));
      };
      const onClose = (): void => {
        off();
        reject(this.failed(PREMATURE_CLOSE));
      };
      stream.on('error', onError);
      stream.on('close', onClose);
      stream.on('end', onEnd);
      stream.on('data', onData);
    });
  }

  /** The caller's typed error for a failure of the body: its abort, or a lost connection. */
  private failed(err: unknown): Error {
    const code = (err as { code?: unknown } | undefined)?.code;
    return err instanceof Aborted || this.c.signal.aborted ? this.c.fail('body_aborted') : this.c.fail('body_connection', typeof code === 'string' ? code : undefined);
  }

  cancel(): Promise<void> {
    this.stream.destroy();
    return Promise.resolve();
  }
}

/** The body of a pool answer: a whole one without a stream unless it must be decoded. */
function poolBody(a: Http1Answer, c: Pick<HttpCall, 'signal' | 'fail'>): ProviderBody {
  if (a.body !== undefined) return new NodeBody(decoded(a.body, a.rawHeaders), c, a.body);
  const whole = a.whole ?? [];
  if (rawHeader(a.rawHeaders, 'content-encoding') === undefined) return new WholeBody(whole, c);
  // A compressed answer (we asked for none): through the same decoders, from a stream of its bytes.
  const stream = Object.assign(new PassThrough(), { complete: false });
  for (const b of whole) stream.write(b);
  stream.end();
  return new NodeBody(decoded(stream, a.rawHeaders), c, stream);
}

/**
 * An answer whose every byte arrived with its head (the pool's usual small answer), read as
 * NodeBody reads one: the same text (UTF-8, a leading BOM dropped) and the same cap, the bytes
 * once through the iterator; after cancel, reads fail as a destroyed body's do.
 */
class WholeBody implements ProviderBody {
  private cancelled = false;
  constructor(
    private readonly chunks: readonly Buffer[],
    private readonly c: Pick<HttpCall, 'fail'>,
  ) {}

  private bytes(): Buffer | undefined {
    const chunks = this.chunks;
    return chunks.length === 0 ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks as Buffer[]);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    if (this.cancelled) throw this.c.fail('body_connection');
    const all = this.bytes();
    if (all !== undefined) yield all;
  }

  readText(maxChars: number): Promise<string | undefined> {
    if (this.cancelled) return Promise.reject(this.c.fail('body_connection'));
    const all = this.bytes();
    const text = all === undefined ? '' : UTF8.decode(all);
    return Promise.resolve(text.length <= maxChars ? text : undefined);
  }

  cancel(): Promise<void> {
    this.cancelled = true;
    return Promise.resolve();
  }
}

/**
 * We ask for `accept-encoding: identity`; a server that compresses anyway (gzip, deflate, br) is
 * decoded, as fetch did. Destroying the decoder destroys the response too.
 */
function decoded(res: Readable, rawHeaders: readonly string[]): Readable {
  // From the raw list: node's header object is not made for this one name (NodeHeaders).
  const coding = (rawHeader(rawHeaders, 'content-encoding') ?? '').trim().toLowerCase();
  const decoder = coding === 'gzip' || coding === 'x-gzip' ? createGunzip() : coding === 'deflate' ? createInflate() : coding === 'br' ? createBrotliDecompress() : undefined;
  if (!decoder) return res;
  // Errors reach the reader through the decoder; unread, they must not become uncaught.
  decoder.on('error', () => undefined);
  res.on('error', (err) => decoder.destroy(err));
  decoder.on('close', () => res.destroy());
  return res.pipe(decoder);
}
