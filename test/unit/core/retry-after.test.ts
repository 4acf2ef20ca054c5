import { rpmExceeded, tpmExceeded, governanceUnavailable, ipNotAllowed } from '../../../lambda/core/governance/denials';
import { ApiError, errorResponse } from '../../../lambda/core/http';
import { RetryHints } from '../../../lambda/core/router/retry-hints';

describe('Retry-After on errors that know their wait', () => {
  test.each(['openai', 'anthropic'] as const)('a rate-limit denial carries the header and the body field (%s shape)', (shape) => {
    const res = errorResponse(rpmExceeded({ scope: 'tenant', limit: 5, retryAfterSeconds: 42 }), shape);
    expect(res.status).toBe(429);
    expect(res.headers['retry-after']).toBe('42');
    expect(JSON.parse(res.body).error.retry_after_seconds).toBe(42);
    expect(res.headers['content-type']).toBe('application/json');
  });

  test('a TPM window that is full: header; a request larger than the whole limit: no wait at all', () => {
    const full = errorResponse(tpmExceeded({ scope: 'token', limit: 1000, used: 900, requestTokens: 200, retryAfterSeconds: 17 }));
    expect(full.headers['retry-after']).toBe('17');
    const never = errorResponse(tpmExceeded({ scope: 'token', limit: 1000, used: 0, requestTokens: 5000, retryAfterSeconds: 17 }));
    expect(never.status).toBe(429);
    expect(never.headers['retry-after']).toBeUndefined();
    expect(JSON.parse(never.body).error.retry_after_seconds).toBeUndefined();
  });

  test('fractions round up, a 503 that knows its wait gets it, other statuses and unknown waits do not', () => {
    expect(errorResponse(new ApiError(429, 'x', 'm', { retry_after_seconds: 0.2 })).headers['retry-after']).toBe('1');
    expect(errorResponse(new ApiError(503, 'x', 'm', { retry_after_seconds: 3 })).headers['retry-after']).toBe('3');
    expect(errorResponse(new ApiError(403, 'x', 'm', { retry_after_seconds: 3 })).headers['retry-after']).toBeUndefined();
    expect(errorResponse(governanceUnavailable()).headers['retry-after']).toBeUndefined();
    expect(errorResponse(ipNotAllowed('203.0.113.9')).headers['retry-after']).toBeUndefined();
    expect(errorResponse(new ApiError(429, 'x', 'm', { retry_after_seconds: 'soon' })).headers['retry-after']).toBeUndefined();
  });

  test('an error’s own headers are kept and win over the derived one', () => {
    const res = errorResponse(new ApiError(429, 'x', 'm', { retry_after_seconds: 3 }, { 'retry-after': '9', 'x-extra': 'y' }));
    expect(res.headers).toMatchObject({ 'retry-after': '9', 'x-extra': 'y', 'cache-control': 'no-store' });
  });

  test('unknown errors: a plain 500 with no extra headers', () => {
    expect(errorResponse(new Error('boom')).headers).toEqual({ 'content-type': 'application/json', 'cache-control': 'no-store' });
  });
});

describe('RetryHints: the providers’ waits when the router gives up', () => {
  const a = { provider: 'openai', model: 'gpt-4o' };
  const b = { provider: 'anthropic', model: 'claude-haiku-4-5' };

  test('every target said when: the shortest wait, in whole seconds', () => {
    const h = new RetryHints();
    h.note(a, 429, 30_000);
    h.note(b, 429, 12_300);
    expect(h.waitSeconds()).toBe(13);
    expect(h.details(429)).toEqual({ retry_after_seconds: 13 });
  });

  test('the last answer of a target counts; one target without a hint makes the wait unknown', () => {
    const h = new RetryHints();
    h.note(a, 429, 1_000);
    h.note(a, 429, 5_000);
    expect(h.waitSeconds()).toBe(5);
    h.note(b, 429, undefined);
    expect(h.waitSeconds()).toBeUndefined();
    expect(h.details(429)).toEqual({});
  });

  test('a target that ended on a 5xx is not a 429 wait; a give-up other than 429 announces none', () => {
    const h = new RetryHints();
    h.note(a, 429, 2_000);
    h.note(a, 503, 9_000);
    expect(h.waitSeconds()).toBeUndefined();
    h.note(b, 429, 4_000);
    expect(h.details(502)).toEqual({});
  });
});
