import { ApiError, HttpRequest } from '../../../lambda/core/http';
import fc from 'fast-check';
import { parseClientRequest, routeOf, routePath } from '../../../lambda/core/router/client-request';

const req = (method: string, path: string, body?: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }): HttpRequest => ({
  method,
  path,
  headers,
  body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
});

function apiError(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return err as ApiError;
  }
  throw new Error('expected an ApiError');
}

describe('routeOf', () => {
  test.each([
    ['POST', '/v1/chat/completions', 'chat'],
    ['POST', '/v1/chat/completions/', 'chat'],
    ['POST', '/v1/chat/completions?x=1', 'chat'],
    ['post', '/v1/messages', 'messages'],
    ['POST', '/v1/embeddings', 'embeddings'],
    ['GET', '/v1/models', 'models'],
  ])('%s %s → %s', (method, path, route) => {
    expect(routeOf(req(method, path))).toBe(route);
  });

  test.each(['/v1/completions', '/v1/chat', '/v1/models/gpt-4o', '/chat/completions', '/v1//chat/completions', '/V1/MESSAGES', ''])('unknown path %p → 404', (path) => {
    const err = apiError(() => routeOf(req('POST', path)));
    expect(err.status).toBe(404);
    expect(err.code).toBe('not_found');
  });

  test.each([
    ['GET', '/v1/chat/completions', 'POST'],
    ['DELETE', '/v1/messages', 'POST'],
    ['POST', '/v1/models', 'GET'],
    ['HEAD', '/v1/embeddings', 'POST'],
  ])('%s %s → 405 naming %s', (method, path, allowed) => {
    const err = apiError(() => routeOf(req(method, path)));
    expect(err.status).toBe(405);
    expect(err.message).toContain(allowed);
  });
});

describe('routePath', () => {
  it('property: the path before the first ?, without trailing slashes (as split and replace gave it)', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('/', '?', 'v', '1', 'a', '.', '%', '#'), { maxLength: 24 }).map((cs) => cs.join('')), (path) => {
        expect(routePath(path)).toBe(path.split('?')[0].replace(/\/+$/, ''));
      }),
      { numRuns: 2_000 },
    );
  });

  // A complexity guard, not a speed goal: /\/+$/ backtracks from every slash of a run that a
  // non-slash ends (quadratic: 64 Ki slashes then 'a/' took about 2.8 s of one core, before any
  // token is checked). Linear, it is well under a millisecond; the bound only tells the two apart.
  it('a long run of slashes before the end costs linear time (no regex backtracking before authentication)', () => {
    const path = '/' + '/'.repeat(64 * 1024) + 'a/';
    // CPU time, not wall time: a loaded machine that takes this process off the CPU adds none.
    const started = process.cpuUsage();
    expect(routePath(path)).toBe(path.slice(0, -1));
    expect(routePath(path + '?q=' + '/'.repeat(64 * 1024))).toBe(path.slice(0, -1));
    expect(routePath('/v1/messages' + '/'.repeat(64 * 1024))).toBe('/v1/messages');
    const cpu = process.cpuUsage(started);
    expect((cpu.user + cpu.system) / 1e3).toBeLessThan(250);
    expect(apiError(() => routeOf(req('POST', path))).status).toBe(404);
  });

  test.each(['/__proto__', '/constructor', '/toString', '/hasOwnProperty'])('a path named like an Object.prototype member %p → 404', (path) => {
    const err = apiError(() => routeOf(req('POST', path)));
    expect(err.status).toBe(404);
  });
});

describe('parseClientRequest', () => {
  const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] };

  test('chat: model, stream, max tokens (max_completion_tokens wins), prompt estimate', () => {
    const body = { ...chat, stream: true, max_tokens: 10, max_completion_tokens: 20 };
    const c = parseClientRequest('chat', req('POST', '/v1/chat/completions', body), 1 << 20);
    expect(c).toMatchObject({ route: 'chat', model: 'gpt-4o-mini', stream: true, maxTokens: 20 });
    expect(c.promptTokenEstimate).toBe(Math.ceil(JSON.stringify(body).length / 4));
    expect(parseClientRequest('chat', req('POST', '/', { ...chat, max_tokens: 7 }), 1 << 20).maxTokens).toBe(7);
    expect(parseClientRequest('chat', req('POST', '/', chat), 1 << 20)).toMatchObject({ stream: false, maxTokens: undefined });
  });

  test('messages require max_tokens', () => {
    const err = apiError(() => parseClientRequest('messages', req('POST', '/', chat), 1 << 20));
    expect([err.status, err.message]).toEqual([400, 'max_tokens is required.']);
    expect(parseClientRequest('messages', req('POST', '/', { ...chat, max_tokens: 5, stream: true }), 1 << 20)).toMatchObject({ maxTokens: 5, stream: true });
  });

  test('embeddings never stream, and need an input', () => {
    expect(parseClientRequest('embeddings', req('POST', '/', { model: 'e', input: 'x', stream: true }), 1 << 20).stream).toBe(false);
    expect(parseClientRequest('embeddings', req('POST', '/', { model: 'e', input: [1, 2] }), 1 << 20).model).toBe('e');
    for (const input of [undefined, '', [], 3, null, {}]) {
      if (input === '') continue; // an empty string is a string; the provider judges it
      expect(apiError(() => parseClientRequest('embeddings', req('POST', '/', { model: 'e', input }), 1 << 20)).status).toBe(400);
    }
  });

  test('size cap: exactly at the limit is accepted, one byte over is 413 (checked before JSON)', () => {
    const body = JSON.stringify(chat);
    const n = Buffer.byteLength(body);
    expect(parseClientRequest('chat', req('POST', '/', body), n).model).toBe('gpt-4o-mini');
    const err = apiError(() => parseClientRequest('chat', req('POST', '/', body), n - 1));
    expect([err.status, err.code, err.details.limit]).toEqual([413, 'request_too_large', n - 1]);
    // Multi-byte characters count as bytes, not UTF-16 units.
    const wide = JSON.stringify({ ...chat, messages: [{ role: 'user', content: 'é'.repeat(100) }] });
    expect(apiError(() => parseClientRequest('chat', req('POST', '/', wide), wide.length)).status).toBe(413);
    // Oversize garbage is a 413, not a 400.
    expect(apiError(() => parseClientRequest('chat', req('POST', '/', '{'.repeat(50)), 10)).status).toBe(413);
  });

  test.each([
    ['not JSON', '{oops', 400],
    ['empty', '', 400],
    ['array', '[]', 400],
    ['no model', { messages: chat.messages }, 400],
    ['numeric model', { ...chat, model: 4 }, 400],
    ['model with a space', { ...chat, model: 'gpt 4' }, 400],
    ['model with a newline', { ...chat, model: 'gpt\n4' }, 400],
    ['model too long', { ...chat, model: 'm'.repeat(201) }, 400],
    ['no messages', { model: 'gpt-4o' }, 400],
    ['empty messages', { model: 'gpt-4o', messages: [] }, 400],
    ['stream not boolean', { ...chat, stream: 'true' }, 400],
    ['max_tokens zero', { ...chat, max_tokens: 0 }, 400],
    ['max_tokens fractional', { ...chat, max_tokens: 1.5 }, 400],
    ['max_completion_tokens string', { ...chat, max_completion_tokens: '10' }, 400],
  ])('chat: %s → %i', (_name, body, status) => {
    expect(apiError(() => parseClientRequest('chat', req('POST', '/', body), 1 << 20)).status).toBe(status);
  });

  test('a non-JSON content type is 415; a missing one is accepted', () => {
    expect(apiError(() => parseClientRequest('chat', req('POST', '/', chat, { 'content-type': 'text/plain' }), 1 << 20)).status).toBe(415);
    expect(parseClientRequest('chat', req('POST', '/', chat, {}), 1 << 20).model).toBe('gpt-4o-mini');
    expect(parseClientRequest('chat', req('POST', '/', chat, { 'content-type': 'application/json; charset=utf-8' }), 1 << 20).model).toBe('gpt-4o-mini');
  });

  test('errors never echo the body', () => {
    const secret = 'sk-this-should-not-be-echoed-123456';
    for (const body of [`{"model": "${secret}`, { model: `${secret} x`, messages: [] }, { model: secret, messages: 'x' }]) {
      const err = apiError(() => parseClientRequest('chat', req('POST', '/', body), 1 << 20));
      expect(err.message).not.toContain(secret);
    }
  });
});
