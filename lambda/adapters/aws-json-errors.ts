/**
 * Errors of the AWS JSON protocols as the SDK v3 shapes them, and which of them are worth another
 * attempt (the SDK's standard retry mode). Adapters map errors by `name` (aws-errors.ts), so a
 * service error is an Error named after its code, with `$fault` and `$metadata`, and the body's
 * members other than the message (a DynamoDB TransactionCanceledException's CancellationReasons).
 * The service's message is left out: it can quote request parameters.
 */

export interface AwsErrorMetadata {
  httpStatusCode?: number;
  requestId?: string;
  attempts?: number;
  totalRetryDelay?: number;
}

export class AwsServiceError extends Error {
  $fault: 'client' | 'server';
  $metadata: AwsErrorMetadata;
  [member: string]: unknown;

  constructor(service: string, operation: string, code: string, status: number, requestId: string | undefined) {
    super(`${service} ${operation} failed: ${code} (HTTP ${status})`);
    this.name = code;
    this.$fault = status >= 500 ? 'server' : 'client';
    this.$metadata = { httpStatusCode: status, ...(requestId ? { requestId } : {}) };
  }
}

/** `aws.protocols#...:http://...` or `com.amazonaws.dynamodb.v20120810#ResourceNotFoundException` → the bare code. */
export function sanitizeErrorCode(raw: string): string {
  let code = raw;
  if (code.includes(',')) code = code.split(',')[0];
  if (code.includes(':')) code = code.split(':')[0];
  if (code.includes('#')) code = code.split('#')[1];
  return code.trim();
}

const MESSAGE_MEMBERS = new Set(['__type', 'message', 'Message', 'code']);

/** The error of a non-2xx answer: code from x-amzn-errortype, else the body's `code` or `__type`. */
export function serviceError(service: string, operation: string, status: number, headers: Record<string, string | undefined>, body: string): AwsServiceError {
  let parsed: Record<string, unknown> = {};
  try {
    const p = body.length > 0 ? (JSON.parse(body) as unknown) : {};
    if (p && typeof p === 'object' && !Array.isArray(p)) parsed = p as Record<string, unknown>;
  } catch {
    // Not JSON (a proxy's error page): the status decides.
  }
  const raw = headers['x-amzn-errortype'] ?? (typeof parsed.code === 'string' ? parsed.code : undefined) ?? (typeof parsed.__type === 'string' ? parsed.__type : undefined);
  const code = (raw && sanitizeErrorCode(raw)) || (status >= 500 ? 'InternalFailure' : 'UnknownError');
  const err = new AwsServiceError(service, operation, code, status, headers['x-amzn-requestid'] ?? headers['x-amz-request-id']);
  for (const [k, v] of Object.entries(parsed)) {
    if (!MESSAGE_MEMBERS.has(k) && k !== 'name' && k !== 'stack' && !k.startsWith('$') && k !== '__proto__') err[k] = v;
  }
  return err;
}

const THROTTLING = new Set([
  'BandwidthLimitExceeded',
  'EC2ThrottledException',
  'LimitExceededException',
  'PriorRequestNotComplete',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'ThrottledException',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'TransactionInProgressException',
]);
const TRANSIENT_NAMES = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException']);
const TRANSIENT_STATUS = new Set([500, 502, 503, 504]);
// Connection resets, refusals and timeouts, and unreachable networks (the SDK's lists).
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND']);
/** Codes of a signature refused for its time: retried once the clock offset is corrected. */
export const CLOCK_SKEW_CODES = new Set(['AuthFailure', 'InvalidSignatureException', 'RequestExpired', 'RequestInTheFuture', 'RequestTimeTooSkewed', 'SignatureDoesNotMatch']);

/**
 * 'timeout' and 'transient' are retried (a timeout costs more of the retry quota); anything else,
 * a ConditionalCheckFailed, a cancelled transaction or a validation error above all, is final.
 */
export function retryKind(err: unknown): 'timeout' | 'transient' | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { name?: unknown; code?: unknown; $metadata?: { httpStatusCode?: number } };
  if (e.name === 'AbortError') return undefined;
  if (e.name === 'TimeoutError' || (typeof e.code === 'string' && NETWORK_CODES.has(e.code))) return 'timeout';
  if (typeof e.name === 'string' && (THROTTLING.has(e.name) || TRANSIENT_NAMES.has(e.name))) return 'transient';
  if (err instanceof AwsServiceError && TRANSIENT_STATUS.has(e.$metadata?.httpStatusCode ?? 0)) return 'transient';
  return undefined;
}
