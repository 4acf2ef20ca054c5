/**
 * A small client for the AWS JSON protocols, for the router's hot path: DynamoDB (awsJson1_0),
 * KMS and Secrets Manager (awsJson1_1). Every operation is `POST /` with `X-Amz-Target:
 * <prefix>.<Operation>` and a JSON body, so one generic `send` covers them. The hard parts stay
 * with the libraries the SDK itself uses: SigV4 (@smithy/signature-v4, with node:crypto SHA-256)
 * and the transport (@smithy/node-http-handler: kept-alive agents, connection and request
 * timeouts). What the SDK's clients add on top, and this client does not: a middleware stack,
 * schema-driven serde, endpoint rulesets and per-call user-agent building, about two thirds of the
 * router's CPU per request when it used them (`npm run bench`, bench/cpu.ts).
 *
 * Behaviour kept from the SDK: endpoints (`https://<service>.<region>.amazonaws.com`,
 * `AWS_ENDPOINT_URL_<SERVICE>` and `AWS_ENDPOINT_URL`, or an explicit `endpoint`), the standard
 * retry mode (throttling, 5xx, timeouts and connection resets; a retry quota; jittered backoff,
 * here at most MAX_BACKOFF_MS per retry so AwsCallBudget holds), clock-skew correction from the
 * response's Date header, and errors named by their service code (aws-json-errors.ts).
 */
import { NodeHttpHandler, type NodeHttpHandlerOptions } from '@smithy/node-http-handler';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, HttpRequest, HttpResponse } from '@smithy/types';
import { AwsServiceError, CLOCK_SKEW_CODES, retryKind, serviceError } from './aws-json-errors';
import { NodeSha256 } from './node-sha256';
import type { AwsJsonService } from './aws-rpc';

export { DYNAMODB, KMS, SECRETS_MANAGER, type AwsJsonService } from './aws-rpc';

/** The transport: NodeHttpHandler, or anything with its `handle` (the CPU benchmark answers in-process). */
export interface RequestHandlerLike {
  handle(request: HttpRequest, options?: { abortSignal?: AbortSignal }): Promise<{ response: HttpResponse }>;
}

/** Longest backoff before one retry (jittered in [0, this)); lambda/handlers/aws-clients.ts budgets with it. */
export const MAX_BACKOFF_MS = 200;

export interface AwsJsonClientOptions {
  readonly region: string;
  readonly credentials: AwsCredentialIdentityProvider | AwsCredentialIdentity;
  /** @default - AWS_ENDPOINT_URL_<SERVICE>, then AWS_ENDPOINT_URL, then the service's regional endpoint */
  readonly endpoint?: string;
  /** Attempts per call, the first included. @default 3 (the SDK's) */
  readonly maxAttempts?: number;
  /**
   * The longest one attempt may take, its answer's body included. The transport's request timeout
   * stops at the headers and its socket timeout only at silence: a body that keeps trickling would
   * hold the call past both. @default - no bound beyond the transport's
   */
  readonly attemptTimeoutMs?: number;
  /** A transport, or NodeHttpHandler options. @default new NodeHttpHandler() */
  readonly requestHandler?: RequestHandlerLike | NodeHttpHandlerOptions;
  /** Sent as user-agent and x-amz-user-agent. */
  readonly userAgent?: string;
  /** Environment for endpoint variables. @default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Tests. */
  readonly random?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/** The endpoint the SDK would use, without its rulesets (no FIPS or dual-stack: the router uses neither). */
export function resolveEndpoint(service: AwsJsonService, region: string, explicit: string | undefined, env: Readonly<Record<string, string | undefined>>): URL {
  const configured =
    explicit ??
    (env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS === 'true' ? undefined : (env[`AWS_ENDPOINT_URL_${service.envId}`] ?? env.AWS_ENDPOINT_URL));
  if (configured) return new URL(configured);
  if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) throw new Error(`not an AWS region: ${region}`);
  const suffix = region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
  return new URL(`https://${service.endpointPrefix}.${region}.${suffix}`);
}

/** Credentials read once and reused until five minutes before they expire (Lambda's never do). */
function memoizeCredentials(source: AwsCredentialIdentityProvider | AwsCredentialIdentity): AwsCredentialIdentityProvider {
  if (typeof source !== 'function') return async () => source;
  let cached: AwsCredentialIdentity | undefined;
  let pending: Promise<AwsCredentialIdentity> | undefined;
  return async () => {
    if (cached && (!cached.expiration || cached.expiration.getTime() - Date.now() > 300_000)) return cached;
    pending ??= source().then(
      (c) => {
        cached = c;
        pending = undefined;
        return c;
      },
      (err: unknown) => {
        pending = undefined;
        throw err;
      },
    );
    return pending;
  };
}

const isHandler = (h: unknown): h is RequestHandlerLike => typeof (h as RequestHandlerLike | undefined)?.handle === 'function';

/** The SDK's standard-mode retry quota: a retry spends tokens, a success gives them back. */
class RetryQuota {
  private tokens = 500;
  take(kind: 'timeout' | 'transient'): number | undefined {
    const cost = kind === 'timeout' ? 10 : 5;
    if (this.tokens < cost) return undefined;
    this.tokens -= cost;
    return cost;
  }
  release(cost: number): void {
    this.tokens = Math.min(500, this.tokens + cost);
  }
}

/**
 * The largest answer read, error answers included. DynamoDB's largest (BatchGetItem) carries at
 * most 16 MB of items; an answer past this bound comes from something that is not the service (a
 * misdirected endpoint, a proxy) and would otherwise be held in memory to the last byte, or
 * forever for a body that never ends.
 */
export const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;

const tooLarge = (service: string, operation: string) =>
  Object.assign(new Error(`${service} ${operation}: the answer is larger than ${MAX_RESPONSE_BYTES} bytes`), { name: 'InvalidResponseError' });

/** Collects a response body (at most MAX_RESPONSE_BYTES); wipes every copy of it once `use` returns (it may hold a data key). */
async function withBody<T>(body: unknown, service: string, operation: string, use: (text: string) => T): Promise<T> {
  const chunks: Buffer[] = [];
  try {
    if (body instanceof Uint8Array) {
      if (body.byteLength > MAX_RESPONSE_BYTES) throw tooLarge(service, operation);
      chunks.push(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    } else if (body && typeof (body as NodeJS.ReadableStream).on === 'function') {
      const stream = body as NodeJS.ReadableStream & { destroy?: () => void };
      let size = 0;
      await new Promise<void>((resolve, reject) => {
        stream.on('data', (c: Buffer | string) => {
          const chunk = typeof c === 'string' ? Buffer.from(c) : c;
          chunks.push(chunk);
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            stream.removeAllListeners('data');
            stream.destroy?.();
            reject(tooLarge(service, operation));
          }
        });
        stream.once('end', resolve);
        stream.once('error', reject);
      });
    }
    const bytes = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    try {
      return use(bytes.toString('utf8'));
    } finally {
      bytes.fill(0);
    }
  } finally {
    for (const c of chunks) c.fill(0);
  }
}

/**
 * The JSON of a 2xx answer. V8's SyntaxError can quote the text it failed on, which may be a data
 * key or a secret: a body that is not JSON fails with an error that names only the call.
 */
function parseAnswer<T>(text: string, service: string, operation: string): T {
  if (text.length === 0) return {} as T;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw Object.assign(new Error(`${service} ${operation}: the answer is not valid JSON`), { name: 'InvalidResponseError' });
  }
  // Every answer of these protocols is an object: null, an array or a scalar is not the service's.
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw Object.assign(new Error(`${service} ${operation}: the answer is not a JSON object`), { name: 'InvalidResponseError' });
  }
  return parsed as T;
}

export class AwsJsonClient {
  readonly endpoint: URL;
  private readonly signer: SignatureV4;
  private readonly handler: RequestHandlerLike;
  private readonly maxAttempts: number;
  private readonly attemptTimeoutMs: number | undefined;
  private readonly quota = new RetryQuota();
  private readonly random: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly contentType: string;
  private readonly host: string;
  private readonly userAgent: string | undefined;
  /** Server time minus local time, learnt from a clock-skew error. */
  private clockOffsetMs = 0;

  constructor(
    readonly service: AwsJsonService,
    opts: AwsJsonClientOptions,
  ) {
    this.endpoint = resolveEndpoint(service, opts.region, opts.endpoint, opts.env ?? process.env);
    if (this.endpoint.pathname !== '/' || this.endpoint.search) throw new Error(`${service.name} endpoint must have no path or query: ${this.endpoint.origin}`);
    this.host = this.endpoint.host;
    this.signer = new SignatureV4({ service: service.endpointPrefix, region: opts.region, credentials: memoizeCredentials(opts.credentials), sha256: NodeSha256, applyChecksum: false });
    this.handler = isHandler(opts.requestHandler) ? opts.requestHandler : new NodeHttpHandler(opts.requestHandler);
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 3);
    this.attemptTimeoutMs = opts.attemptTimeoutMs;
    this.random = opts.random ?? Math.random;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.contentType = `application/x-amz-json-${service.jsonVersion}`;
    this.userAgent = opts.userAgent;
  }

  /** One operation: `input` is the request's JSON (wire form), the answer the response's. */
  async send<T = Record<string, unknown>>(operation: string, input: object): Promise<T> {
    const body = JSON.stringify(input);
    let totalRetryDelay = 0;
    let spent: number | undefined;
    for (let attempt = 1; ; attempt++) {
      let failure: unknown;
      let skewCorrected = false;
      try {
        const out = await this.attempt<T>(operation, body);
        if (spent !== undefined) this.quota.release(spent);
        return out;
      } catch (err) {
        failure = err;
        skewCorrected = err instanceof AwsServiceError && (err as { clockSkewCorrected?: boolean }).clockSkewCorrected === true;
        if (err instanceof AwsServiceError) {
          delete (err as { clockSkewCorrected?: boolean }).clockSkewCorrected;
          err.$metadata.attempts = attempt;
          err.$metadata.totalRetryDelay = totalRetryDelay;
        }
      }
      const kind = skewCorrected ? 'transient' : retryKind(failure);
      if (!kind || attempt >= this.maxAttempts) throw failure;
      spent = this.quota.take(kind);
      if (spent === undefined) throw failure;
      const delay = Math.floor(this.random() * Math.min(MAX_BACKOFF_MS, 100 * 2 ** attempt));
      totalRetryDelay += delay;
      await this.sleep(delay);
    }
  }

  private async attempt<T>(operation: string, body: string): Promise<T> {
    const started = Date.now();
    const headers: Record<string, string> = {
      host: this.host,
      'content-type': this.contentType,
      'x-amz-target': `${this.service.targetPrefix}.${operation}`,
      'content-length': String(Buffer.byteLength(body)),
    };
    if (this.userAgent) {
      headers['user-agent'] = this.userAgent;
      headers['x-amz-user-agent'] = this.userAgent;
    }
    const unsigned = {
      method: 'POST',
      protocol: this.endpoint.protocol,
      hostname: this.endpoint.hostname,
      port: this.endpoint.port ? Number(this.endpoint.port) : undefined,
      path: '/',
      query: {},
      headers,
      body,
    };
    const request = await this.signer.sign(unsigned as HttpRequest, { signingDate: new Date(Date.now() + this.clockOffsetMs) });
    const { response } = await this.handler.handle(request);
    const status = response.statusCode;
    // The rest of the attempt's time for the body: then it is destroyed, and the attempt is a timeout (retried).
    const stream = response.body as { destroy?: (err: Error) => void } | undefined;
    const timer =
      this.attemptTimeoutMs !== undefined && typeof stream?.destroy === 'function'
        ? setTimeout(
            () => stream.destroy!(Object.assign(new Error(`${this.service.name} ${operation}: no complete answer within ${this.attemptTimeoutMs} ms`), { name: 'TimeoutError' })),
            Math.max(0, this.attemptTimeoutMs - (Date.now() - started)),
          )
        : undefined;
    try {
      return await withBody(response.body, this.service.name, operation, (text) => {
        if (status >= 200 && status < 300) return parseAnswer<T>(text, this.service.name, operation);
        const h = response.headers as Record<string, string | undefined>;
        const err = serviceError(this.service.name, operation, status, h, text);
        if (CLOCK_SKEW_CODES.has(err.name) && this.correctClock(h.date ?? h.Date)) (err as { clockSkewCorrected?: boolean }).clockSkewCorrected = true;
        throw err;
      });
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }

  /** Learns the server's clock from a refused signature's Date header; true when it moved by 5 min or more. */
  private correctClock(date: string | undefined): boolean {
    const server = date ? Date.parse(date) : NaN;
    if (!Number.isFinite(server)) return false;
    if (Math.abs(Date.now() + this.clockOffsetMs - server) < 300_000) return false;
    this.clockOffsetMs = server - Date.now();
    return true;
  }

  destroy(): void {
    (this.handler as { destroy?: () => void }).destroy?.();
  }
}
