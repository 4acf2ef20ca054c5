/**
 * ProviderHttpClient against the fake providers on 127.0.0.1: auth per provider kind, streaming,
 * status mapping, first-byte timeouts, refused connections, and no key in any error; the node:http
 * transport's keep-alive, backpressure, cancel, abort and broken-connection behaviour.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import {
  errorToAttemptResult,
  ProviderCallError,
  ProviderHttpClient,
  providerUrl,
  toAttemptResult,
  type ProviderResponse,
} from '../../lambda/adapters/provider-http';
import { chunksOf, type ProviderBody } from '../../lambda/core/router/provider-port';
import { Cancellation } from '../../lambda/core/routing/fallback';
import { MAX_SSE_EVENT_CHARS, SseLimitError, SseParser } from '../../lambda/core/sse';
import type { Target } from '../../lambda/core/routing/types';
import { DEFAULT_FAKE_KEYS, startFakeProviders, type FakeProviders } from '../support/fake-providers';
import { freePort } from '../support/free-port';
import { requestSplitter } from '../support/raw-http';

let fakes: FakeProviders;
const client = new ProviderHttpClient({ firstByteTimeoutMs: 5_000 });
const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi there' }] };
const anthropicBody = { model: 'claude-haiku-4-5', max_tokens: 50, messages: [{ role: 'user', content: 'hi there' }] };
const never = () => new AbortController().signal;

beforeAll(async () => {
  fakes = await startFakeProviders();
});
afterAll(async () => {
  await fakes.close();
});
beforeEach(() => fakes.reset());

function target(provider: 'openai' | 'anthropic' | 'mistral', kind: Target['kind'] = provider, model = 'm'): Target {
  return { provider, kind, baseUrl: fakes[provider].baseUrl, model, secret: 'default' };
}

async function text(res: ProviderResponse): Promise<string> {
  const decoder = new TextDecoder();
  let out = '';
  if (res.body) for await (const chunk of chunksOf(res.body)) out += decoder.decode(chunk, { stream: true });
  return out + decoder.decode();
}

async function callError(p: Promise<unknown>): Promise<ProviderCallError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ProviderCallError);
    return err as ProviderCallError;
  }
  throw new Error('expected a ProviderCallError');
}

/** Everything an error could leak through: message, stack, own properties, cause chain. */
function everything(err: unknown): string {
  const e = err as Error & { cause?: unknown };
  return [String(e), e.stack, JSON.stringify(e), e.cause === undefined ? '' : everything(e.cause)].join('\n');
}

describe('auth and headers reach the provider', () => {
  it.each([
    ['openai', 'openai'],
    ['mistral', 'mistral'],
    ['openai', 'openai-compatible'],
  ] as const)('%s fake, kind %s: Authorization: Bearer', async (provider, kind) => {
    const res = await client.send({ target: target(provider, kind), path: '/v1/chat/completions', body: chat, apiKey: DEFAULT_FAKE_KEYS[provider], signal: never() });
    expect(res.status).toBe(200);
    expect(JSON.parse(await text(res)).choices[0].message.content).toBe('Echo: hi there');
    const [req] = fakes[provider].requests;
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/v1/chat/completions');
    expect(req.headers.authorization).toBe(`Bearer ${DEFAULT_FAKE_KEYS[provider]}`);
    expect(req.headers['x-api-key']).toBeUndefined();
    expect(req.headers['anthropic-version']).toBeUndefined();
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers.accept).toBe('application/json');
    expect(req.body).toEqual(chat);
  });

  it('anthropic: x-api-key and anthropic-version, no Authorization', async () => {
    const res = await client.send({ target: target('anthropic'), path: '/v1/messages', body: anthropicBody, apiKey: DEFAULT_FAKE_KEYS.anthropic, signal: never() });
    expect(res.status).toBe(200);
    const [req] = fakes.anthropic.requests;
    expect(req.headers['x-api-key']).toBe(DEFAULT_FAKE_KEYS.anthropic);
    expect(req.headers['anthropic-version']).toBe('2023-06-01');
    expect(req.headers.authorization).toBeUndefined();
  });

  it('GET /v1/models carries no body', async () => {
    const res = await client.send({ target: target('anthropic'), path: '/v1/models', apiKey: DEFAULT_FAKE_KEYS.anthropic, signal: never() });
    expect(res.status).toBe(200);
    expect(JSON.parse(await text(res)).data[0].id).toBe('claude-sonnet-4-5');
    expect(fakes.anthropic.requests[0]).toMatchObject({ method: 'GET', body: undefined });
  });

  it('sends router-chosen extra headers but refuses to let them override auth', async () => {
    await client.send({
      target: target('anthropic'),
      path: '/v1/messages',
      body: anthropicBody,
      apiKey: DEFAULT_FAKE_KEYS.anthropic,
      signal: never(),
      extraHeaders: { 'anthropic-beta': 'tools-2024-04-04' },
    });
    expect(fakes.anthropic.requests[0].headers['anthropic-beta']).toBe('tools-2024-04-04');
    for (const name of ['Authorization', 'x-api-key', 'Host', 'proxy-authorization', 'bad header', 'anthropic-version']) {
      await expect(
        client.send({ target: target('openai'), path: '/v1/chat/completions', body: chat, apiKey: 'k', signal: never(), extraHeaders: { [name]: 'x' } }),
      ).rejects.toThrow(/is not allowed/);
    }
    expect(fakes.openai.requests).toHaveLength(0);
  });

  it('a native Messages client may pin its anthropic-version (date-shaped, Anthropic only)', async () => {
    const send = (extraHeaders: Record<string, string>) =>
      client.send({ target: target('anthropic'), path: '/v1/messages', body: anthropicBody, apiKey: DEFAULT_FAKE_KEYS.anthropic, signal: never(), extraHeaders });
    await send({ 'Anthropic-Version': '2024-10-22' });
    expect(fakes.anthropic.requests[0].headers['anthropic-version']).toBe('2024-10-22');
    await expect(send({ 'anthropic-version': '2023-06-01, x' })).rejects.toThrow(/is not allowed/);
    expect(fakes.anthropic.requests).toHaveLength(1);
  });
});

describe('streaming', () => {
  it('asks for SSE and hands back a readable stream', async () => {
    const res = await client.send({
      target: target('openai'),
      path: '/v1/chat/completions',
      body: { ...chat, stream: true },
      apiKey: DEFAULT_FAKE_KEYS.openai,
      signal: never(),
    });
    expect(fakes.openai.requests[0].headers.accept).toBe('text/event-stream');
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const body = await text(res);
    expect(body).toContain('"content":" there"');
    expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true);
  });

  it('an Anthropic stream arrives event by event', async () => {
    const res = await client.send({ target: target('anthropic'), path: '/v1/messages', body: { ...anthropicBody, stream: true }, apiKey: DEFAULT_FAKE_KEYS.anthropic, signal: never() });
    const body = await text(res);
    expect(body.startsWith('event: message_start\n')).toBe(true);
    expect(body).toContain('event: message_stop');
  });
});

describe('status mapping', () => {
  it('429 → retryable with Retry-After in ms', async () => {
    fakes.script('openai', [{ kind: 'status', status: 429 }]);
    const res = await client.send({ target: target('openai'), path: '/v1/chat/completions', body: chat, apiKey: DEFAULT_FAKE_KEYS.openai, signal: never() });
    expect(res.retryAfterMs).toBe(1000);
    expect(toAttemptResult(res)).toEqual({ ok: false, retryable: true, reason: 'status', status: 429, retryAfterMs: 1000 });
  });

  it('retry-after-ms wins over retry-after', async () => {
    fakes.script('openai', [{ kind: 'status', status: 429, headers: { 'retry-after-ms': '250', 'retry-after': '9' } }]);
    const res = await client.send({ target: target('openai'), path: '/v1/chat/completions', body: chat, apiKey: DEFAULT_FAKE_KEYS.openai, signal: never() });
    expect(res.retryAfterMs).toBe(250);
  });

  it.each([500, 502, 503, 529, 408])('%i → retryable', async (s) => {
    fakes.script('anthropic', [{ kind: 'status', status: s }]);
    const res = await client.send({ target: target('anthropic'), path: '/v1/messages', body: anthropicBody, apiKey: DEFAULT_FAKE_KEYS.anthropic, signal: never() });
    expect(toAttemptResult(res)).toEqual({ ok: false, retryable: true, reason: 'status', status: s });
  });

  it("a client 4xx is not retryable and keeps the provider's answer to pass through", async () => {
    const res = await client.send({ target: target('mistral'), path: '/v1/chat/completions', body: { model: 'x', messages: [] }, apiKey: DEFAULT_FAKE_KEYS.mistral, signal: never() });
    const result = toAttemptResult(res);
    expect(result).toMatchObject({ ok: false, retryable: false, reason: 'status', status: 400 });
    expect(result.ok === false && result.value).toBe(res);
    expect(JSON.parse(await text(res))).toMatchObject({ object: 'error', message: 'model and a non-empty messages array are required' });
  });

  it('a wrong key is the tenant\u2019s 401, passed through', async () => {
    const res = await client.send({ target: target('openai'), path: '/v1/chat/completions', body: chat, apiKey: 'sk-wrong', signal: never() });
    expect(toAttemptResult(res)).toMatchObject({ ok: false, retryable: false, status: 401 });
  });

  it('2xx → ok with the response', async () => {
    const res = await client.send({ target: target('openai'), path: '/v1/embeddings', body: { model: 'text-embedding-3-small', input: 'x' }, apiKey: DEFAULT_FAKE_KEYS.openai, signal: never() });
    expect(toAttemptResult(res)).toEqual({ ok: true, value: res });
  });

  it('never follows a redirect (it would carry the key elsewhere)', async () => {
    fakes.script('anthropic', [{ kind: 'status', status: 302, body: {}, headers: { location: `${fakes.openai.baseUrl}/v1/models` } }]);
    const res = await client.send({ target: target('anthropic'), path: '/v1/messages', body: anthropicBody, apiKey: DEFAULT_FAKE_KEYS.anthropic, signal: never() });
    expect(res.status).toBe(302);
    expect(toAttemptResult(res)).toMatchObject({ ok: false, retryable: true, status: 302 });
    expect(fakes.openai.requests).toHaveLength(0);
  });
});

describe('transport failures', () => {
  const secret = 'sk-very-secret-key-0123456789';

  it("'hang' → timeout within the first-byte timeout, without the key", async () => {
    fakes.script('openai', [{ kind: 'hang' }]);
    fakes.setKey('openai', secret);
    const fast = new ProviderHttpClient({ firstByteTimeoutMs: 150 });
    const started = Date.now();
    const err = await callError(fast.send({ target: target('openai'), path: '/v1/chat/completions', body: { ...chat, note: 'body-marker' }, apiKey: secret, signal: never() }));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(err.reason).toBe('timeout');
    expect(err.provider).toBe('openai');
    expect(err.message).toBe("provider 'openai': no response headers within 150 ms");
    expect(everything(err)).not.toContain(secret);
    expect(everything(err)).not.toContain('body-marker');
    expect(errorToAttemptResult(err)).toEqual({ ok: false, retryable: true, reason: 'timeout' });
  });

  it('a slow first byte within the timeout is fine', async () => {
    fakes.script('openai', [{ kind: 'delay', ms: 50 }]);
    const res = await new ProviderHttpClient({ firstByteTimeoutMs: 2_000 }).send({ target: target('openai'), path: '/v1/chat/completions', body: chat, apiKey: DEFAULT_FAKE_KEYS.openai, signal: never() });
    expect(res.status).toBe(200);
  });

  it('the caller\u2019s deadline signal aborts a hung call as a timeout', async () => {
    fakes.script('anthropic', [{ kind: 'hang' }]);
    fakes.setKey('anthropic', secret);
    const err = await callError(client.send({ target: target('anthropic'), path: '/v1/messages', body: anthropicBody, apiKey: secret, signal: AbortSignal.timeout(100) }));
    expect(err.reason).toBe('timeout');
    expect(err.message).toBe("provider 'anthropic': request aborted at the deadline before response headers");
  });

  it('the router\u2019s own cancellation (no AbortController) cuts a hung call the same way, over node:http and over an injected fetch', async () => {
    for (const via of [client, new ProviderHttpClient({ firstByteTimeoutMs: 5_000, fetch })]) {
      fakes.script('anthropic', [{ kind: 'hang' }]);
      fakes.setKey('anthropic', secret);
      const cut = new Cancellation();
      setTimeout(() => cut.abort(new DOMException('The request deadline passed', 'TimeoutError')), 100);
      const err = await callError(via.send({ target: target('anthropic'), path: '/v1/messages', body: anthropicBody, apiKey: secret, signal: cut }));
      expect(err.reason).toBe('timeout');
      expect(err.message).toBe("provider 'anthropic': request aborted at the deadline before response headers");
    }
    // Already cut: nothing is sent.
    const done = new Cancellation();
    done.abort();
    const err = await callError(client.send({ target: target('anthropic'), path: '/v1/messages', body: anthropicBody, apiKey: secret, signal: done }));
    expect(err.reason).toBe('timeout');
  });

  it('connection refused on a closed 127.0.0.1 port → connection', async () => {
    const port = await freePort();
    const closed: Target = { provider: 'my-vllm', kind: 'openai-compatible', baseUrl: `http://127.0.0.1:${port}`, model: 'm', secret: 'default' };
    const err = await callError(client.send({ target: closed, path: '/v1/chat/completions', body: chat, apiKey: secret, signal: never() }));
    expect(err.reason).toBe('connection');
    expect(err.message).toBe("provider 'my-vllm': connection failed (ECONNREFUSED)");
    expect(everything(err)).not.toContain(secret);
    expect(everything(err)).not.toContain(String(port));
    expect(errorToAttemptResult(err)).toEqual({ ok: false, retryable: true, reason: 'connection' });
  });

  it('a key that is not a valid header value is refused before fetch can quote it', async () => {
    const bad = `${secret}\r\nx-evil: 1`;
    const err = await client.send({ target: target('openai'), path: '/v1/chat/completions', body: chat, apiKey: bad, signal: never() }).catch((e: unknown) => e);
    expect(String(err)).toMatch(/API key is not a valid header value/);
    expect(everything(err)).not.toContain(secret);
    expect(fakes.openai.requests).toHaveLength(0);
  });

  it('errorToAttemptResult rethrows what is not a ProviderCallError', () => {
    expect(() => errorToAttemptResult(new TypeError('bug'))).toThrow(TypeError);
  });
});

describe('providerUrl', () => {
  const t = (baseUrl: string) => ({ provider: 'p', baseUrl });
  it('joins base and path, with or without a trailing slash or a base path', () => {
    expect(providerUrl(t('https://api.openai.com'), '/v1/chat/completions')).toBe('https://api.openai.com/v1/chat/completions');
    expect(providerUrl(t('https://api.openai.com/'), '/v1/models')).toBe('https://api.openai.com/v1/models');
    expect(providerUrl(t('http://127.0.0.1:8000/openai//'), '/v1/embeddings')).toBe('http://127.0.0.1:8000/openai/v1/embeddings');
  });
  it.each([
    ['https://api.openai.com', '/v1/files'],
    ['https://api.openai.com', '@evil.example/v1/models'],
    ['https://api.openai.com', '.evil.example/v1/models'],
  ])('refuses %s + %s', (base, path) => {
    expect(() => providerUrl(t(base), path)).toThrow(/not a provider API path/);
  });
  it.each(['https://user:pw@api.openai.com', 'https://api.openai.com?x=1', 'https://api.openai.com#f', 'file:///etc', 'not a url', 'ftp://api.openai.com'])(
    'refuses a base URL like %s',
    (base) => {
      expect(() => providerUrl(t(base), '/v1/models')).toThrow(/provider 'p'/);
    },
  );
});

describe('the node:http transport (a raw server on 127.0.0.1)', () => {
  type Handler = (req: IncomingMessage, res: ServerResponse) => void;
  let server: Server;
  let handler: Handler;
  let connections = 0;
  const sockets = new Set<Socket>();
  const http = new ProviderHttpClient({ firstByteTimeoutMs: 2_000 });
  const raw = (): Target => ({ provider: 'raw', kind: 'openai-compatible', baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, model: 'm', secret: 'default' });
  const call = (signal = never()) => http.send({ target: raw(), path: '/v1/chat/completions', body: chat, apiKey: 'sk-raw-key-0123456789', signal });

  beforeAll(async () => {
    server = createServer((req, res) => handler(req, res));
    server.on('connection', (s) => {
      connections++;
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });
  afterAll(async () => {
    http.close();
    for (const s of sockets) s.destroy();
    server.close();
  });
  beforeEach(() => {
    connections = 0;
  });

  it('keeps the connection alive across calls and asks for an uncompressed answer', async () => {
    const seen: (string | undefined)[] = [];
    handler = (req, res) => {
      seen.push(req.headers['accept-encoding']);
      req.resume();
      req.on('end', () => res.end('{"ok":true}'));
    };
    for (let i = 0; i < 3; i++) expect(await text(await call())).toBe('{"ok":true}');
    expect(connections).toBe(1);
    expect(seen).toEqual(['identity', 'identity', 'identity']);
    await expect(http.send({ target: raw(), path: '/v1/chat/completions', body: chat, apiKey: 'k', signal: never(), extraHeaders: { 'accept-encoding': 'gzip' } })).rejects.toThrow(
      /extra header 'accept-encoding' is not allowed/,
    );
  });

  it('decodes a gzip answer from a server that compresses anyway', async () => {
    handler = (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(gzipSync('{"choices":[]}'));
    };
    expect(await text(await call())).toBe('{"choices":[]}');
  });

  it('a Content-Encoding sent in any case, and headers read by name: node\'s joined values; a 2xx answer\'s wait hint is not read (only a refusal\'s is)', async () => {
    handler = (req, res) => {
      req.resume();
      res.setHeader('Content-Encoding', 'GZIP');
      res.setHeader('X-Multi', ['a', 'b']);
      res.setHeader('Retry-After', '7');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(gzipSync('{"choices":[1]}'));
    };
    const res = await call();
    expect(res.retryAfterMs).toBeUndefined();
    expect(res.headers.get('x-multi')).toBe('a, b');
    expect(res.headers.get('Retry-After')).toBe('7');
    expect(res.headers.get('x-absent')).toBeNull();
    expect(await text(res)).toBe('{"choices":[1]}');
    // Two codings (node joins them): not one this transport decodes, so the bytes come as sent.
    handler = (req, res) => {
      req.resume();
      res.setHeader('content-encoding', ['gzip', 'gzip']);
      res.end('plain');
    };
    expect(await text(await call())).toBe('plain');
  });

  it('a gzip bomb in a stream (a line that never ends, 64 MiB decoded from well under 1 MiB sent): the SSE reader stops at its bound, little is decoded, and the connection closes', async () => {
    let serverClosed = false;
    const bomb = gzipSync(Buffer.concat([Buffer.from('data: '), Buffer.alloc(64 * 1024 * 1024, 'a')]), { level: 9 });
    expect(bomb.length).toBeLessThan(1024 * 1024);
    handler = (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': 'gzip' });
      res.on('close', () => (serverClosed = true));
      res.end(bomb);
    };
    const res = await call();
    const parser = new SseParser();
    let decoded = 0;
    const read = async () => {
      for await (const chunk of chunksOf(res.body!)) {
        decoded += chunk.length;
        parser.push(chunk);
      }
    };
    await expect(read()).rejects.toThrow(SseLimitError);
    expect(decoded).toBeLessThanOrEqual(MAX_SSE_EVENT_CHARS + 1024 * 1024);
    await waitFor(() => serverClosed);
  });

  it('reads with backpressure: an unread body stops the server writing, and cancel closes the connection', async () => {
    let written = 0;
    let serverClosed = false;
    const chunk = Buffer.alloc(64 * 1024, 'x');
    handler = (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.on('close', () => (serverClosed = true));
      const pump = (): void => {
        while (!res.destroyed && written < 256 * 1024 * 1024) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      pump();
    };
    const res = await call();
    const first = await chunksOf(res.body!)[Symbol.asyncIterator]().next();
    expect(first.done).toBe(false);
    await new Promise((r) => setTimeout(r, 300));
    // Socket buffers on both sides hold a few MiB at most; without backpressure it would be all 256.
    expect(written).toBeLessThan(32 * 1024 * 1024);
    await res.body!.cancel();
    await waitFor(() => serverClosed);
  });

  it('the caller\u2019s signal cuts a body being read: a typed timeout, and the upstream connection closes', async () => {
    let serverClosed = false;
    handler = (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {}\n\n');
      res.on('close', () => (serverClosed = true));
    };
    const cut = new AbortController();
    const res = await call(cut.signal);
    const it = chunksOf(res.body!)[Symbol.asyncIterator]();
    await it.next();
    setTimeout(() => cut.abort(), 50);
    const err = await it.next().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderCallError);
    expect((err as ProviderCallError).reason).toBe('timeout');
    expect((err as ProviderCallError).message).toBe("provider 'raw': request aborted at the deadline while the response was read");
    await waitFor(() => serverClosed);
  });

  it('a connection lost mid-body is a typed connection error without the URL or key', async () => {
    handler = (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
      res.write('{"partial":');
      setTimeout(() => res.socket?.destroy(), 20);
    };
    const res = await call();
    const err = await text(res).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderCallError);
    expect((err as ProviderCallError).reason).toBe('connection');
    expect((err as ProviderCallError).message).toMatch(/^provider 'raw': connection lost while the response was read( \([A-Z_]+\))?$/);
    const port = String((server.address() as AddressInfo).port);
    expect(everything(err)).not.toContain(port);
    expect(everything(err)).not.toContain('sk-raw-key');
  });

  describe('readText (a buffered answer without the async iterator)', () => {
    const readText = (res: ProviderResponse, max = 1_000_000) => (res.body as ProviderBody).readText!(max);
    const slowly =
      (parts: Buffer[]): Handler =>
      (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json' });
        const next = (i: number): void => {
          if (i === parts.length) return void res.end();
          res.write(parts[i]);
          setTimeout(() => next(i + 1), 5);
        };
        next(0);
      };

    it('an answer that arrived whole is read in one piece, and the connection is reused', async () => {
      const sockets = new Set<number | undefined>();
      handler = (req, res) => {
        sockets.add(req.socket.remotePort);
        req.resume();
        req.on('end', () => res.end('{"ok":"\u00e9t\u00e9"}'));
      };
      for (let i = 0; i < 3; i++) {
        expect(await readText(await call())).toBe('{"ok":"\u00e9t\u00e9"}');
        // The socket goes back to the pool in the ticks after the read (node's end of message).
        await new Promise((r) => setImmediate(r));
      }
      expect(sockets.size).toBe(1);
    });

    it('an answer in pieces (a character split between them, a BOM first) reads as the iterator reads it, and the connection is reused', async () => {
      const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"t":"\u20ac\u{1F600} ok"}')]);
      const parts = [bytes.subarray(0, 2), bytes.subarray(2, 9), bytes.subarray(9, 10), bytes.subarray(10)];
      const sockets = new Set<number | undefined>();
      const serve = slowly(parts);
      handler = (req, res) => {
        sockets.add(req.socket.remotePort);
        serve(req, res);
      };
      const viaText = await readText(await call());
      expect(viaText).toBe(await text(await call()));
      expect(viaText).toBe('{"t":"\u20ac\u{1F600} ok"}');
      expect(sockets.size).toBe(1);
    });

    it('the cap is on UTF-16 units, as on the iterator path: exactly at it passes, one past it is refused and the connection closes', async () => {
      // 8 characters of 3 bytes each: 24 bytes, 8 units. Arriving in pieces, the units are counted.
      const euros = Buffer.from('\u20ac'.repeat(8));
      handler = slowly([euros.subarray(0, 10), euros.subarray(10)]);
      expect(await readText(await call(), 8)).toBe('\u20ac'.repeat(8));
      handler = slowly([euros.subarray(0, 10), euros.subarray(10)]);
      expect(await readText(await call(), 7)).toBeUndefined();
      let serverClosed = false;
      handler = (req, res) => {
        req.resume();
        res.on('close', () => (serverClosed = true));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('x'.repeat(64));
      };
      expect(await readText(await call(), 32)).toBeUndefined();
      await waitFor(() => serverClosed);
      // Whole on arrival: the same cap.
      handler = (req, res) => {
        req.resume();
        req.on('end', () => res.end(euros));
      };
      expect(await readText(await call(), 8)).toBe('\u20ac'.repeat(8));
      expect(await readText(await call(), 7)).toBeUndefined();
    });

    it('decodes a gzip answer', async () => {
      handler = (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        res.end(gzipSync('{"choices":[]}'));
      };
      expect(await readText(await call())).toBe('{"choices":[]}');
    });

    it('an empty answer is the empty string', async () => {
      handler = (req, res) => {
        req.resume();
        req.on('end', () => res.end());
      };
      expect(await readText(await call())).toBe('');
    });

    it('the caller\u2019s signal cuts it: a typed timeout, and the upstream connection closes', async () => {
      let serverClosed = false;
      handler = (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"partial":');
        res.on('close', () => (serverClosed = true));
      };
      const cut = new AbortController();
      const res = await call(cut.signal);
      setTimeout(() => cut.abort(), 50);
      const err = await readText(res).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProviderCallError);
      expect((err as ProviderCallError).reason).toBe('timeout');
      expect((err as ProviderCallError).message).toBe("provider 'raw': request aborted at the deadline while the response was read");
      await waitFor(() => serverClosed);
    });

    it('a connection lost mid-body is a typed connection error without the URL or key; so is a body destroyed before the read', async () => {
      handler = (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
        res.write('{"partial":');
        setTimeout(() => res.socket?.destroy(), 20);
      };
      const err = await readText(await call()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProviderCallError);
      expect((err as ProviderCallError).reason).toBe('connection');
      expect((err as ProviderCallError).message).toMatch(/^provider 'raw': connection lost while the response was read( \([A-Z_]+\))?$/);
      expect(everything(err)).not.toContain(String((server.address() as AddressInfo).port));
      expect(everything(err)).not.toContain('sk-raw-key');
      const res = await call();
      await res.body!.cancel();
      const again = await readText(res).catch((e: unknown) => e);
      expect(again).toBeInstanceOf(ProviderCallError);
      expect((again as ProviderCallError).reason).toBe('connection');
    });
  });

  it('an already-aborted signal sends nothing', async () => {
    let requests = 0;
    handler = (req, res) => {
      requests++;
      req.resume();
      res.end('{}');
    };
    const err = await callError(call(AbortSignal.abort()));
    expect(err.reason).toBe('timeout');
    expect(requests).toBe(0);
  });
});

/**
 * Waits for a close the test asserts. 3 s rather than 2 s for a loaded CI runner, and no more: a
 * kept-alive socket left open would be closed anyway by the client's 4 s idle timeout or the
 * server's 5 s keep-alive timeout, so a close seen later would not prove the one asserted.
 */
async function waitFor(cond: () => boolean, ms = 3_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('the idle-socket timeout of kept-alive connections', () => {
  it('closes idle sockets after it, but never cuts a slow answer (headers or body) in progress', async () => {
    const sockets = new Set<Socket>();
    let connections = 0;
    const server = createServer((req, res) => {
      req.resume();
      // Headers after 3x the idle timeout, then a body pause of 3x again.
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"a":');
        setTimeout(() => res.end('1}'), 300);
      }, 300);
    });
    server.on('connection', (s) => {
      connections++;
      sockets.add(s);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const slow = new ProviderHttpClient({ firstByteTimeoutMs: 2_000, idleSocketMs: 100 });
    try {
      const t: Target = { provider: 'slow', kind: 'openai-compatible', baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, model: 'm', secret: 'default' };
      const res = await slow.send({ target: t, path: '/v1/chat/completions', body: chat, apiKey: 'sk-slow-0123456789', signal: never() });
      expect(await text(res)).toBe('{"a":1}');
      // Idle now: the client closes its kept-alive socket after the idle timeout.
      const [socket] = sockets;
      await waitFor(() => socket.destroyed || socket.readyState === 'closed' || socket.readableEnded);
      const again = await slow.send({ target: t, path: '/v1/chat/completions', body: chat, apiKey: 'sk-slow-0123456789', signal: never() });
      expect(await text(again)).toBe('{"a":1}');
      expect(connections).toBe(2);
    } finally {
      slow.close();
      for (const s of sockets) s.destroy();
      server.close();
    }
  });
});

describe('kept-alive upstream connections never hand one answer to the next request (a raw TCP server)', () => {
  /**
   * Answers the first request with `first` (written as given: a lying Content-Length and bytes
   * after the answer), every later one with its own numbered answer. Counts connections.
   */
  async function rawServer(first: (s: Socket) => void): Promise<{ url: string; connections: () => number; close(): void }> {
    let requests = 0;
    let connections = 0;
    const open = new Set<Socket>();
    const server = createTcpServer((s) => {
      connections++;
      open.add(s);
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString('latin1');
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const length = Number(/content-length: *(\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
          if (buf.length < end + 4 + length) return;
          buf = buf.slice(end + 4 + length);
          requests++;
          if (requests === 1) first(s);
          else {
            const answer = `{"answer":${requests}}`;
            s.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${answer.length}\r\n\r\n${answer}`);
          }
        }
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      connections: () => connections,
      close: () => {
        for (const s of open) s.destroy();
        server.close();
      },
    };
  }
  const forged = 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 16\r\n\r\n{"forged":"yes"}';
  /** Set once the forged bytes were written (the next request goes out only after they arrived). */
  let forgedSent = false;

  it.each([
    ['in the same packet', (s: Socket) => (s.write(`HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello${forged}`), (forgedSent = true))],
    ['while the connection is idle in the pool', (s: Socket) => (s.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello'), setTimeout(() => (s.write(forged), (forgedSent = true)), 20))],
  ])('bytes after an answer (a short Content-Length) %s are never read as the next answer, whichever way the body is read', async (_when, first) => {
    for (const read of ['readText', 'iterator'] as const) {
      forgedSent = false;
      const upstream = await rawServer(first);
      const http = new ProviderHttpClient({ firstByteTimeoutMs: 2_000 });
      try {
        const t: Target = { provider: 'raw', kind: 'openai-compatible', baseUrl: upstream.url, model: 'm', secret: 'default' };
        const answers: string[] = [];
        for (let i = 0; i < 3; i++) {
          const res = await http.send({ target: t, path: '/v1/chat/completions', body: chat, apiKey: 'sk-raw-key-0123456789', signal: never() });
          answers.push(read === 'readText' ? ((await (res.body as ProviderBody).readText!(1_000)) ?? 'too large') : await text(res));
          // The next request leaves only once the forged bytes are in and this process had an I/O
          // turn to see them (a fixed 50 ms against the server's 20 ms lost that race when the
          // process stalled across both timers: the bytes were then read as the next answer).
          await waitFor(() => forgedSent);
          await new Promise((r) => setImmediate(r));
        }
        expect({ read, answers }).toEqual({ read, answers: ['hello', '{"answer":2}', '{"answer":3}'] });
      } finally {
        http.close();
        upstream.close();
      }
    }
  });
});

describe('the request on the wire (a raw TCP server on 127.0.0.1)', () => {
  /** The head and body of each request that arrives, as sent. */
  async function capture(): Promise<{ url: string; heads: string[]; bodies: string[]; close(): void }> {
    const heads: string[] = [];
    const bodies: string[] = [];
    const open = new Set<Socket>();
    const server = createTcpServer((s) => {
      open.add(s);
      s.on(
        'data',
        requestSplitter((head, body) => {
          heads.push(head);
          bodies.push(body.toString('utf8'));
          s.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}');
        }),
      );
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      heads,
      bodies,
      close: () => {
        for (const s of open) s.destroy();
        server.close();
      },
    };
  }
  const headers = (head: string) => head.split('\r\n').slice(1).map((l) => l.slice(0, l.indexOf(':')).toLowerCase());
  const header = (head: string, name: string) => head.split('\r\n').find((l) => l.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim();

  it('one Host (host and port of the configured URL), one Content-Length of the body in bytes, a kept-alive connection, no chunking, the path and query as configured', async () => {
    const upstream = await capture();
    const http = new ProviderHttpClient({ firstByteTimeoutMs: 2_000 });
    try {
      const body = { model: 'm', messages: [{ role: 'user', content: 'h\u00e9llo \u{1F600}' }] };
      const openai: Target = { provider: 'raw', kind: 'openai-compatible', baseUrl: `${upstream.url}/base/`, model: 'm', secret: 'default' };
      const azure: Target = { provider: 'az', kind: 'azure-openai', baseUrl: upstream.url, model: 'chat-eu', secret: 'default' };
      for (const target of [openai, azure, openai]) {
        const res = await http.send({ target, path: '/v1/chat/completions', body, apiKey: 'sk-raw-key-0123456789', signal: never(), extraHeaders: target === openai ? { 'x-extra': 'yes' } : undefined });
        expect(await (res.body as ProviderBody).readText!(100)).toBe('{}');
      }
      const port = new URL(upstream.url).port;
      expect(upstream.heads.map((h) => h.split('\r\n')[0])).toEqual([
        'POST /base/v1/chat/completions HTTP/1.1',
        'POST /openai/deployments/chat-eu/chat/completions?api-version=2024-10-21 HTTP/1.1',
        'POST /base/v1/chat/completions HTTP/1.1',
      ]);
      for (const [i, head] of upstream.heads.entries()) {
        const names = headers(head);
        for (const once of ['host', 'content-length', 'content-type', 'accept', 'accept-encoding', 'connection']) expect(names.filter((n) => n === once)).toEqual([once]);
        expect(names).not.toContain('transfer-encoding');
        expect(header(head, 'host')).toBe(`127.0.0.1:${port}`);
        expect(header(head, 'connection')).toBe('keep-alive');
        expect(Number(header(head, 'content-length'))).toBe(Buffer.byteLength(upstream.bodies[i]));
        expect(JSON.parse(upstream.bodies[i])).toEqual(body);
      }
      expect(header(upstream.heads[0], 'x-extra')).toBe('yes');
      expect(header(upstream.heads[1], 'api-key')).toBe('sk-raw-key-0123456789');
      expect(header(upstream.heads[1], 'authorization')).toBeUndefined();
    } finally {
      http.close();
      upstream.close();
    }
  });

  it('a GET carries no length and no body', async () => {
    const upstream = await capture();
    const http = new ProviderHttpClient({ firstByteTimeoutMs: 2_000 });
    try {
      const target: Target = { provider: 'raw', kind: 'openai-compatible', baseUrl: upstream.url, model: 'm', secret: 'default' };
      await http.send({ target, path: '/v1/models', apiKey: 'sk-raw-key-0123456789', signal: never() });
      expect(upstream.heads[0].split('\r\n')[0]).toBe('GET /v1/models HTTP/1.1');
      expect(headers(upstream.heads[0])).not.toContain('content-length');
      expect(headers(upstream.heads[0])).not.toContain('transfer-encoding');
    } finally {
      http.close();
      upstream.close();
    }
  });
});

describe('checked endpoints are remembered, never a refusal', () => {
  it('a base URL refused once is refused every time; one that passed keeps its path per model and version', () => {
    const base = 'https://res.openai.azure.com';
    const azure = (model: string, apiVersion?: string) => ({ provider: 'az', kind: 'azure-openai' as const, baseUrl: base, model, apiVersion });
    for (let i = 0; i < 3; i++) {
      expect(() => providerUrl({ provider: 'p', baseUrl: 'https://user:pw@api.openai.com' }, '/v1/models')).toThrow(/refusing a URL outside/);
      expect(() => providerUrl(azure('..'), '/v1/chat/completions')).toThrow(/deployment name/);
      expect(providerUrl(azure('a'), '/v1/chat/completions')).toBe(`${base}/openai/deployments/a/chat/completions?api-version=2024-10-21`);
      expect(providerUrl(azure('b', '2025-04-01-preview'), '/v1/chat/completions')).toBe(`${base}/openai/deployments/b/chat/completions?api-version=2025-04-01-preview`);
      expect(providerUrl({ provider: 'p', baseUrl: `${base}/` }, '/v1/models')).toBe(`${base}/v1/models`);
    }
  });

  it('past its bound (many distinct endpoints) every answer is still the checked one', () => {
    for (let i = 0; i < 700; i++) {
      expect(providerUrl({ provider: 'p', baseUrl: `http://127.0.0.1:${1000 + i}/p${i}` }, '/v1/embeddings')).toBe(`http://127.0.0.1:${1000 + i}/p${i}/v1/embeddings`);
    }
    expect(() => providerUrl({ provider: 'p', baseUrl: 'http://127.0.0.1:1000/p0?x=1' }, '/v1/embeddings')).toThrow(/refusing/);
  });
});
