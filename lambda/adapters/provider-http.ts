/**
 * The one place that speaks HTTP to providers (node:http on kept-alive agents). It builds the auth
 * header from a key it is handed and forgets it, refuses any URL outside the target's configured
 * origin, bounds the wait for response headers, and reports transport failures as typed errors
 * whose messages never carry the key, the body or a query string.
 */
import { AZURE_API_VERSION, AZURE_DEPLOYMENT, DEFAULT_AZURE_API_VERSION } from '../core/cell-config';
import { ANTHROPIC_VERSION } from '../core/translate/anthropic-types';
import { bedrockPath, bedrockSigner, type BedrockWireOptions, eventStreamToSse, signBedrock } from './bedrock-wire';
import { parseRetryAfter, parseRetryAfterMs } from '../core/routing/backoff';
import type { AttemptOutcome, CancelSignal } from '../core/routing/fallback';
import type { Target } from '../core/routing/types';
import { isRetryableStatus, type ProviderClient, type ProviderRequest, type ProviderResponse } from '../core/router/provider-port';
import { BoundedMemo } from '../core/bounded-memo';
import { withoutTrailingSlashes } from '../core/http';
import { type CallFailure, type HttpEndpoint, NodeHttpTransport } from './node-http-transport';

export type { ProviderResponse } from '../core/router/provider-port';

export type ProviderPath = ProviderRequest['path'];

export interface ProviderSendRequest extends ProviderRequest {
  /** Extra provider headers chosen by the router (e.g. anthropic-beta); never the client's headers. */
  readonly extraHeaders?: Readonly<Record<string, string>>;
}

export interface ProviderHttpClientOptions {
  /**
   * Call providers through this fetch instead of node:http (tests, runtimes without node:http).
   * @default - node:http / node:https on kept-alive agents (node-http-transport.ts)
   */
  readonly fetch?: typeof fetch;
  /** Abort when no response headers arrived within this long. Default 60 s. */
  readonly firstByteTimeoutMs?: number;
  /**
   * A kept-alive provider connection unused for this long is closed (a shorter `Keep-Alive:
   * timeout` hint from the provider wins). It never cuts a request in progress.
   * @default 4000
   */
  readonly idleSocketMs?: number;
  /** Clock for HTTP-date Retry-After values. Default Date.now. */
  readonly now?: () => number;
  /**
   * Amazon Bedrock targets: the cell's region (the only Bedrock endpoint host allowed) and the
   * router role's credentials for `auth: 'iam'` targets.
   * @default - Bedrock targets are refused
   */
  readonly bedrock?: BedrockWireOptions;
}

/** A transport failure: no response at all. Safe to log: names the provider, never the key or URL. */
export class ProviderCallError extends Error {
  override readonly name = 'ProviderCallError';
  constructor(
    readonly reason: 'timeout' | 'connection',
    readonly provider: string,
    message: string,
  ) {
    super(message);
  }
}

const PATHS: ReadonlySet<string> = new Set<ProviderPath>(['/v1/chat/completions', '/v1/embeddings', '/v1/messages', '/v1/models', '/v1/responses', '/converse', '/converse-stream']);
/** Headers this adapter owns: extraHeaders may not set or override them. */
const RESERVED = new Set(['authorization', 'x-api-key', 'api-key', 'x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256', 'content-type', 'accept', 'host', 'content-length', 'cookie', 'connection', 'transfer-encoding', 'accept-encoding']);
/** A native Messages client may pin its own API version; only a date-shaped value, only to Anthropic. */
const ANTHROPIC_VERSION_VALUE = /^\d{4}-\d{2}-\d{2}$/;
const HEADER_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;
const HEADER_VALUE = /^[\x20-\x7e]{0,1024}$/;
const API_KEY = /^[\x21-\x7e]{1,4096}$/;

export class ProviderHttpClient implements ProviderClient {
  private readonly fetch?: typeof fetch;
  private readonly transport: NodeHttpTransport;
  private readonly firstByteTimeoutMs: number;
  private readonly now: () => number;
  private readonly bedrock?: BedrockWireOptions;
  private readonly bedrockSigner?: ReturnType<typeof bedrockSigner>;

  constructor(opts: ProviderHttpClientOptions = {}) {
    this.fetch = opts.fetch;
    this.transport = new NodeHttpTransport(opts.idleSocketMs);
    this.firstByteTimeoutMs = opts.firstByteTimeoutMs ?? 60_000;
    this.now = opts.now ?? Date.now;
    this.bedrock = opts.bedrock;
    this.bedrockSigner = opts.bedrock ? bedrockSigner(opts.bedrock) : undefined;
  }

  async send(req: ProviderSendRequest): Promise<ProviderResponse> {
    const { target } = req;
    const endpoint = providerEndpoint(target, req.path, this.bedrock?.region);
    const url = endpoint.url;
    const method = req.method ?? (req.path === '/v1/models' ? 'GET' : 'POST');
    if (method === 'GET' && req.body !== undefined) throw new Error(`provider '${target.provider}': a GET carries no body`);
    const stream = (isRecord(req.body) && req.body.stream === true) || req.path === '/converse-stream';
    const bodyText = req.body === undefined ? undefined : JSON.stringify(req.body);
    let headers = buildHeaders(target, req.apiKey, stream, req.extraHeaders);
    if (target.kind === 'bedrock' && target.auth === 'iam') {
      // The router's role signs (SigV4, service bedrock, the cell's region); no tenant key exists.
      if (!this.bedrockSigner) throw new Error(`provider '${target.provider}': no credentials for IAM-authenticated Amazon Bedrock`);
      headers = await signBedrock(this.bedrockSigner, url, headers, bodyText ?? '');
    }
    const res = this.fetch
      ? await this.viaFetch(this.fetch, url.href, method, headers, bodyText, req.signal, target.provider)
      : await this.transport.call(endpoint, { method, headers, body: bodyText, signal: req.signal, firstByteTimeoutMs: this.firstByteTimeoutMs, fail: (f, code) => this.failure(target.provider, f, code) });
    // A wait hint matters only on a refusal (429, 503...); a 2xx answer's headers are not read here.
    const refused = res.status < 200 || res.status >= 300;
    const retryAfterMs = refused ? (parseRetryAfterMs(res.headers.get('retry-after-ms')) ?? parseRetryAfter(res.headers.get('retry-after'), this.now())) : undefined;
    // ConverseStream answers in AWS's binary event stream; the core reads SSE from every provider.
    const body = req.path === '/converse-stream' && res.status >= 200 && res.status < 300 && res.body ? eventStreamToSse(res.body) : res.body;
    return { status: res.status, headers: res.headers, body, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
  }

  /** Closes kept-alive provider connections (tests, shutdown). */
  close(): void {
    this.transport.close();
  }

  /** Only the provider id and fixed text go into the message: transport errors can quote the URL. */
  private failure(provider: string, failure: CallFailure, code?: string): ProviderCallError {
    if (failure === 'aborted') return new ProviderCallError('timeout', provider, `provider '${provider}': request aborted at the deadline before response headers`);
    if (failure === 'body_aborted') return new ProviderCallError('timeout', provider, `provider '${provider}': request aborted at the deadline while the response was read`);
    if (failure === 'first_byte_timeout') return new ProviderCallError('timeout', provider, `provider '${provider}': no response headers within ${this.firstByteTimeoutMs} ms`);
    const safe = code && /^[A-Z][A-Z0-9_]{1,40}$/.test(code) ? code : undefined;
    const what = failure === 'body_connection' ? 'connection lost while the response was read' : 'connection failed';
    return new ProviderCallError('connection', provider, `provider '${provider}': ${what}${safe ? ` (${safe})` : ''}`);
  }

  /** The injected fetch (tests, runtimes without node:http), with the same guarantees. */
  private async viaFetch(
    fetchFn: typeof fetch,
    url: string,
    method: string,
    headers: Record<string, string>,
    body: string | undefined,
    signal: CancelSignal,
    provider: string,
  ): Promise<Pick<ProviderResponse, 'status' | 'headers' | 'body'>> {
    // fetch takes a real AbortSignal: one linked to the caller's (which stays linked for the body).
    const caller = new AbortController();
    if (signal.aborted) caller.abort(signal.reason);
    else signal.addEventListener('abort', () => caller.abort(signal.reason), { once: true });
    const firstByte = new AbortController();
    const timer = setTimeout(() => firstByte.abort(), this.firstByteTimeoutMs);
    try {
      // A redirect would re-send the key to wherever it points (undici keeps x-api-key across origins).
      return await fetchFn(url, { method, headers, body, redirect: 'manual', signal: AbortSignal.any([caller.signal, firstByte.signal]) });
    } catch (err) {
      if (signal.aborted) throw this.failure(provider, 'aborted');
      if (firstByte.signal.aborted) throw this.failure(provider, 'first_byte_timeout');
      throw this.failure(provider, 'connection', errorCode(err));
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * baseUrl (no trailing slash) + path, refused unless it stays on the configured origin. For an
 * Azure OpenAI resource the path becomes the deployment's (`/openai/deployments/{model}/...`) with
 * `?api-version=`; the deployment name is checked, so no model string can walk out of that path.
 */
export function providerUrl(
  target: Pick<Target, 'provider' | 'baseUrl'> & Partial<Pick<Target, 'kind' | 'model' | 'apiVersion'>>,
  path: string,
  /** The cell's region: a Bedrock endpoint must be this region's. */
  region?: string,
): string {
  return providerEndpoint(target, path, region).url.href;
}

/**
 * Endpoints already checked, by configured base URL and path: the check parses two URLs, and a
 * cell calls few distinct endpoints, each on every request. Only a URL that passed is kept, and
 * the key is everything the check reads (the base URL and the suffix made from path, model and
 * API version), so a hit gives what the check would give. Bounded (emptied when full).
 */
const ENDPOINTS = new BoundedMemo<HttpEndpoint>(256, 256 * 1024);

function providerEndpoint(target: Pick<Target, 'provider' | 'baseUrl'> & Partial<Pick<Target, 'kind' | 'model' | 'apiVersion'>>, path: string, region: string | undefined): HttpEndpoint {
  if (!PATHS.has(path)) throw new Error(`provider '${target.provider}': path is not a provider API path`);
  if ((path === '/converse' || path === '/converse-stream') !== (target.kind === 'bedrock')) {
    throw new Error(`provider '${target.provider}': path is not an API of this provider kind`);
  }
  const suffix = target.kind === 'azure-openai' ? azurePath(target, path) : target.kind === 'bedrock' ? bedrockPath(target, path, region) : path;
  const key = `${suffix}\n${target.baseUrl}`;
  let endpoint = ENDPOINTS.get(key);
  if (endpoint === undefined) {
    endpoint = httpEndpoint(checkedUrl(target, suffix));
    ENDPOINTS.set(key, endpoint);
  }
  return endpoint;
}

/** baseUrl + suffix, refused unless it stays on the configured origin. */
function checkedUrl(target: Pick<Target, 'provider' | 'baseUrl'>, suffix: string): URL {
  let base: URL;
  let full: URL;
  try {
    base = new URL(target.baseUrl);
    full = new URL(withoutTrailingSlashes(target.baseUrl) + suffix);
  } catch {
    throw new Error(`provider '${target.provider}': baseUrl is not a valid URL`);
  }
  const clean = !base.username && !base.password && !base.search && !base.hash && (base.protocol === 'https:' || base.protocol === 'http:');
  if (!clean || full.origin !== base.origin || !(full.pathname + full.search).endsWith(suffix)) {
    throw new Error(`provider '${target.provider}': refusing a URL outside the configured endpoint`);
  }
  return full;
}

/** What node:http needs from a checked URL, as urlToHttpOptions takes it (IPv6 without brackets; Host as the URL's host). */
function httpEndpoint(url: URL): HttpEndpoint {
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { url, secure: url.protocol === 'https:', hostname, port: url.port === '' ? undefined : Number(url.port), path: url.pathname + url.search, host: url.host };
}

function azurePath(target: Partial<Pick<Target, 'provider' | 'model' | 'apiVersion'>>, path: string): string {
  const version = target.apiVersion ?? DEFAULT_AZURE_API_VERSION;
  if (!AZURE_API_VERSION.test(version)) throw new Error(`provider '${target.provider}': apiVersion is not an Azure API version`);
  const query = `?api-version=${version}`;
  if (path === '/v1/models') return `/openai/models${query}`;
  if (path === '/v1/messages') throw new Error(`provider '${target.provider}': Azure OpenAI has no Messages API`);
  // The Responses API lives on the resource's v1 surface: the deployment goes in the body's model, no api-version.
  if (path === '/v1/responses') return '/openai/v1/responses';
  const deployment = target.model ?? '';
  // '..' alone is caught by the origin/path check too; the pattern keeps the rest out.
  if (!AZURE_DEPLOYMENT.test(deployment) || /^\.+$/.test(deployment)) {
    throw new Error(`provider '${target.provider}': the model must be an Azure deployment name (letters, digits, '.', '_', '-')`);
  }
  return `/openai/deployments/${deployment}${path.slice('/v1'.length)}${query}`;
}

function buildHeaders(target: Target, apiKey: string, stream: boolean, extra: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const iam = target.kind === 'bedrock' && target.auth === 'iam';
  // Checked here so that fetch never gets the chance to quote a malformed key in its own error.
  if (!iam && (typeof apiKey !== 'string' || !API_KEY.test(apiKey))) throw new Error(`provider '${target.provider}': the API key is not a valid header value`);
  if (iam && apiKey !== '') throw new Error(`provider '${target.provider}': an IAM-authenticated target takes no API key`);
  const headers: Record<string, string> = {};
  if (target.kind === 'anthropic') headers['anthropic-version'] = ANTHROPIC_VERSION;
  for (const [rawName, value] of Object.entries(extra ?? {})) {
    const name = rawName.toLowerCase();
    const versionOk = name !== 'anthropic-version' || (target.kind === 'anthropic' && ANTHROPIC_VERSION_VALUE.test(value));
    if (!HEADER_NAME.test(name) || RESERVED.has(name) || name.startsWith('proxy-') || !versionOk || typeof value !== 'string' || !HEADER_VALUE.test(value)) {
      throw new Error(`provider '${target.provider}': extra header '${HEADER_NAME.test(name) ? name : '?'}' is not allowed`);
    }
    headers[name] = value;
  }
  headers['content-type'] = 'application/json';
  // Uncompressed: nothing to inflate per chunk, and a stream's first event is not held in a compressor.
  headers['accept-encoding'] = 'identity';
  headers.accept = stream ? (target.kind === 'bedrock' ? 'application/vnd.amazon.eventstream' : 'text/event-stream') : 'application/json';
  if (iam) {
    // Signed by the caller (SigV4); no key in any header.
  } else if (target.kind === 'anthropic') {
    headers['x-api-key'] = apiKey;
  } else if (target.kind === 'azure-openai') {
    headers['api-key'] = apiKey;
  } else {
    headers.authorization = `Bearer ${apiKey}`;
  }
  return headers;
}

/**
 * 2xx → ok. 408, 429, 5xx (and a stray 3xx: a misconfigured endpoint) → retryable; the body is
 * cancelled to free the connection. Other 4xx → not retryable, with the response as the value so
 * the router can pass the provider's client error through untouched.
 */
export function toAttemptResult(res: ProviderResponse): AttemptOutcome<ProviderResponse> {
  if (res.status >= 200 && res.status < 300) return { ok: true, value: res };
  if (res.status >= 400 && res.status < 500 && !isRetryableStatus(res.status)) {
    return { ok: false, retryable: false, reason: 'status', status: res.status, value: res };
  }
  void res.body?.cancel().catch(() => undefined);
  return { ok: false, retryable: true, reason: 'status', status: res.status, ...(res.retryAfterMs !== undefined ? { retryAfterMs: res.retryAfterMs } : {}) };
}

/** A ProviderCallError as a retryable failure; anything else is a bug and is rethrown. */
export function errorToAttemptResult(err: unknown): AttemptOutcome<never> {
  if (err instanceof ProviderCallError) return { ok: false, retryable: true, reason: err.reason };
  throw err;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The system error code (ECONNREFUSED, UND_ERR_SOCKET...) from fetch's error or its cause. */
function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,40}$/.test(code)) return code;
  }
  return undefined;
}
