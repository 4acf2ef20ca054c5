import { ApiError } from '../http';
import type { CancelSignal } from '../routing/fallback';
import type { Target } from '../routing/types';

/** The upstream call, seen from the core. lambda/adapters/provider-http.ts implements it. */
export interface ProviderRequest {
  readonly target: Target;
  /** `/converse` and `/converse-stream`: Amazon Bedrock (the model id goes in the URL). */
  readonly path: '/v1/chat/completions' | '/v1/embeddings' | '/v1/messages' | '/v1/models' | '/v1/responses' | '/converse' | '/converse-stream';
  readonly method?: 'POST' | 'GET';
  readonly body?: unknown;
  /**
   * The provider key as a header value: built at the last moment, never logged. Empty for a
   * Bedrock target with `auth: 'iam'`, which the adapter signs with the router's role instead.
   */
  readonly apiKey: string;
  /** Cuts the call, before or after the response headers (AbortSignal's shape; routing/fallback.ts). */
  readonly signal: CancelSignal;
  /** Non-secret protocol headers, e.g. the client's `anthropic-version` on Anthropic passthrough. */
  readonly extraHeaders?: Readonly<Record<string, string>>;
}

/**
 * The upstream body: its bytes in order, read once. `cancel` (or leaving a `for await` early)
 * frees the connection. The HTTP adapter hands back node stream chunks; a web ReadableStream
 * (fetch's body, test fakes) is one as well.
 */
export interface ProviderBody extends AsyncIterable<Uint8Array> {
  cancel(reason?: unknown): Promise<void>;
  /**
   * The whole body as text (UTF-8, a leading BOM dropped, as TextDecoder reads it), or undefined
   * once its text is longer than `maxChars` UTF-16 units (the body is then destroyed, so its
   * connection is not reused). Failures as the iterator's. Optional: an adapter's fast path for
   * buffered answers; `readCapped` iterates bodies without it.
   */
  readText?(maxChars: number): Promise<string | undefined>;
}

/** Response headers by name (case-insensitive), as fetch's Headers reads them. */
export interface ProviderHeaders {
  get(name: string): string | null;
}

export interface ProviderResponse {
  readonly status: number;
  readonly headers: ProviderHeaders;
  readonly body: ProviderBody | ReadableStream<Uint8Array> | null;
  readonly retryAfterMs?: number;
}

/** The body's chunks: node's web ReadableStream is async-iterable, which its TS type does not say. */
export function chunksOf(body: ProviderBody | ReadableStream<Uint8Array>): AsyncIterable<Uint8Array> {
  return body as AsyncIterable<Uint8Array>;
}

/**
 * A buffered upstream body as text, refused (502 upstream_response_too_large) once its text is
 * longer than `max` UTF-16 units; transport failures propagate as the body's errors.
 */
export async function readCapped(res: Pick<ProviderResponse, 'body'>, max: number): Promise<string> {
  const body = res.body;
  if (!body) return '';
  if (typeof (body as ProviderBody).readText === 'function') {
    const text = await (body as ProviderBody).readText!(max);
    if (text === undefined) throw tooLarge();
    return text;
  }
  const decoder = new TextDecoder();
  let out = '';
  for await (const chunk of chunksOf(body)) {
    out += decoder.decode(chunk, { stream: true });
    if (out.length > max) throw tooLarge();
  }
  return out + decoder.decode();
}

function tooLarge(): ApiError {
  return new ApiError(502, 'upstream_response_too_large', 'The provider response was too large.');
}

export interface ProviderClient {
  send(req: ProviderRequest): Promise<ProviderResponse>;
}

/**
 * 429, 408, 5xx and redirects (never followed: they could carry the key elsewhere) are the
 * provider's trouble, so fall back; other 4xx are the request's.
 */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status === 408 || status >= 500 || (status >= 300 && status < 400);
}

/** Transport failures the adapter reports by name: timeouts and connection errors. */
export function transportFailure(err: unknown): 'timeout' | 'connection' | undefined {
  const e = err as { name?: string; reason?: string } | undefined;
  if (e?.name === 'ProviderCallError' && (e.reason === 'timeout' || e.reason === 'connection')) return e.reason;
  if (e?.name === 'AbortError' || e?.name === 'TimeoutError') return 'timeout';
  return undefined;
}
