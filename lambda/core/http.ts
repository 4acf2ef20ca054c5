import { randomUUID } from 'node:crypto';

/**
 * Transport-neutral HTTP shapes. Handlers map API Gateway events (or the local server's requests)
 * to these, so every use case is tested without AWS.
 */
export interface HttpRequest {
  readonly method: string;
  /** Path below the API stage, e.g. `/vault/secrets`. */
  readonly path: string;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string | undefined>>;
  /** Query-string parameters (the last value of a repeated one). */
  readonly query?: Readonly<Record<string, string | undefined>>;
  readonly body?: string;
  readonly sourceIp?: string;
  /** The SigV4 caller (IAM ARN) on IAM-authorized routes, as API Gateway reports it. */
  readonly iamCaller?: string;
  /** The front door's id for this request (API Gateway's requestContext.requestId), if any. */
  readonly requestId?: string;
  /**
   * Fires when the client goes away before its answer is complete (the socket or the Lambda
   * response stream closed), so that the upstream call is cut instead of running to the deadline.
   */
  readonly signal?: AbortSignal;
}

/**
 * The text without its trailing slashes, in linear time. `replace(/\/+$/, '')` backtracks from
 * every slash of a run that a non-slash ends (quadratic: a 16 KiB request line costs about 250 ms
 * of CPU, before any caller is authenticated).
 */
export function withoutTrailingSlashes(text: string): string {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0x2f) end--;
  return end === text.length ? text : text.slice(0, end);
}

/** The response header that carries the request id, on success and on error. */
export const REQUEST_ID_HEADER = 'x-request-id';

/**
 * The request's id: the front door's (API Gateway's requestContext.requestId, which correlates
 * with its access log) when it looks like one, else a new one. Never taken from a client header.
 */
export function requestIdOf(req: Pick<HttpRequest, 'requestId'>): string {
  const id = req.requestId;
  return id !== undefined && /^[A-Za-z0-9-]{8,64}$/.test(id) ? id : randomUUID();
}

/** The response with the request-id header added. */
export function withRequestId(req: Pick<HttpRequest, 'requestId'>, res: HttpResponse): { requestId: string; res: HttpResponse } {
  const requestId = requestIdOf(req);
  return { requestId, res: { ...res, headers: { ...res.headers, [REQUEST_ID_HEADER]: requestId } } };
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export type ErrorShape = 'openai' | 'anthropic';

const OPENAI_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  405: 'invalid_request_error',
  409: 'invalid_request_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  421: 'invalid_request_error',
  429: 'rate_limit_error',
};

const ANTHROPIC_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  405: 'invalid_request_error',
  409: 'invalid_request_error',
  413: 'request_too_large',
  415: 'invalid_request_error',
  421: 'invalid_request_error',
  429: 'rate_limit_error',
  529: 'overloaded_error',
};

/**
 * An error meant for the client: an honest status, a stable code and a message that never
 * contains a token, a secret or a stack trace.
 */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra non-secret fields for the error object (e.g. home_region, limit). */
    readonly details: Readonly<Record<string, string | number>> = {},
    /** Extra non-secret response headers (lower-case names), e.g. `retry-after`. */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/**
 * The response headers of an error: its own, plus `Retry-After` (whole seconds, rounded up) on a
 * 429 or 503 whose wait is known from `retry_after_seconds`, so that SDKs back off by the header
 * as well as by the body.
 */
export function errorHeaders(err: ApiError): Record<string, string> {
  const headers: Record<string, string> = { ...err.headers };
  const wait = err.details.retry_after_seconds;
  if ((err.status === 429 || err.status === 503) && headers['retry-after'] === undefined && typeof wait === 'number' && Number.isFinite(wait)) {
    headers['retry-after'] = String(Math.max(0, Math.ceil(wait)));
  }
  return headers;
}

export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): HttpResponse {
  return {
    status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers },
    body: JSON.stringify(body),
  };
}

/** Renders any error in the OpenAI or Anthropic error shape. Unknown errors become a generic 500. */
export function errorResponse(err: unknown, shape: ErrorShape = 'openai', requestId?: string): HttpResponse {
  const api =
    err instanceof ApiError
      ? err
      : new ApiError(500, 'internal_error', `Internal error${requestId ? ` (request ${requestId})` : ''}; nothing was changed by the failed step.`);
  const headers = errorHeaders(api);
  if (shape === 'anthropic') {
    const type = ANTHROPIC_TYPES[api.status] ?? 'api_error';
    return jsonResponse(api.status, { type: 'error', error: { type, message: api.message, code: api.code, ...api.details } }, headers);
  }
  const type = OPENAI_TYPES[api.status] ?? 'server_error';
  return jsonResponse(api.status, { error: { message: api.message, type, code: api.code, ...api.details } }, headers);
}

/** Parses a JSON body within a size cap: 413 when too large, 400 when not JSON. */
export function parseJsonBody(req: HttpRequest, maxBytes: number): unknown {
  const body = req.body ?? '';
  if (Buffer.byteLength(body, 'utf8') > maxBytes) {
    throw new ApiError(413, 'request_too_large', `The request body is larger than ${maxBytes} bytes.`, { limit: maxBytes });
  }
  if (body.trim() === '') throw new ApiError(400, 'invalid_json', 'The request body must be a JSON object.');
  const type = req.headers['content-type'];
  if (type !== undefined && !/^application\/json\b/i.test(type.trim())) {
    throw new ApiError(415, 'unsupported_media_type', 'The request body must be sent as application/json.');
  }
  try {
    return JSON.parse(body);
  } catch {
    throw new ApiError(400, 'invalid_json', 'The request body is not valid JSON.');
  }
}

/** The bearer token from `Authorization: Bearer <t>` (or `x-api-key` where allowed). */
export function presentedToken(req: HttpRequest, allowApiKeyHeader = false): string {
  const auth = req.headers['authorization'];
  if (auth !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (!m) throw new ApiError(401, 'invalid_authorization', 'The Authorization header must be "Bearer <api key>".');
    return m[1];
  }
  const key = allowApiKeyHeader ? req.headers['x-api-key'] : undefined;
  if (key !== undefined && key.trim() !== '') return key.trim();
  throw new ApiError(401, 'missing_api_key', 'No API key: send "Authorization: Bearer <api key>".');
}
