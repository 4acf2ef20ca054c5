/**
 * The real router Lambda handler (lambda/handlers/router.ts): the Node.js runtime's `awslambda`
 * streaming globals are stood in for, the function's environment is the provisioned cell's (AWS
 * SDK through AWS_ENDPOINT_URL to moto, providers at the fakes), and it is invoked with API Gateway
 * proxy events and a writable stream that collects what it writes.
 */
import { Writable } from 'node:stream';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { canaryHits, captureOutput, makeCanary, OutputCapture } from '../support/canary';
import { AwsFaultProxy, holdCalls, isSettle, startAwsFaultProxy } from '../support/aws-fault-proxy';
import { waitUntil } from '../support/wait';
import { dumpTables, parseSse, RouterHarness, startRouterHarness } from '../support/router-harness';

type Meta = { statusCode: number; headers: Record<string, string> };
type Handler = (event: APIGatewayProxyEvent, stream: Writable) => Promise<void>;

let h: RouterHarness;
let invoke: string;
let handler: Handler;
let capture: OutputCapture;
let proxy: AwsFaultProxy;
const metas: Array<{ meta: Meta; stream: unknown }> = [];
const savedEnv = { ...process.env };
const CANARY = makeCanary('L');

beforeAll(async () => {
  h = await startRouterHarness();
  // The handler's SDK clients go through a pass-through proxy that can hold back chosen calls.
  proxy = await startAwsFaultProxy(h.moto.endpoint);
  h.fakes.setKey('openai', CANARY);
  ({ invokeToken: invoke } = await h.tenant('lambda-co', { keys: { openai: CANARY } }));

  (globalThis as Record<string, unknown>).awslambda = {
    streamifyResponse: (fn: Handler) => fn,
    HttpResponseStream: {
      from(stream: Writable, meta: Meta) {
        metas.push({ meta, stream });
        return stream;
      },
    },
  };
  for (const k of ['AWS_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_ROLE_ARN', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI']) {
    delete process.env[k];
  }
  Object.assign(process.env, {
    ...h.cell.cell.env,
    PROVIDER_ENDPOINTS: JSON.stringify(h.cell.config.providers),
    AWS_ENDPOINT_URL: proxy.endpoint,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_REGION: h.cell.config.region,
    AWS_DEFAULT_REGION: h.cell.config.region,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: '/nonexistent/aws-config',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
  });
  await jest.isolateModulesAsync(async () => {
    handler = (await import('../../lambda/handlers/router')).handler as Handler;
  });
  capture = captureOutput();
}, 60_000);
afterAll(async () => {
  capture?.restore();
  delete (globalThis as Record<string, unknown>).awslambda;
  for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
  Object.assign(process.env, savedEnv);
  await proxy?.close();
  await h?.close();
});

function event(method: string, path: string, opts: { body?: unknown; headers?: Record<string, string>; base64?: boolean } = {}): APIGatewayProxyEvent {
  const headers: Record<string, string> = { Host: 'abc123.execute-api.eu-central-1.amazonaws.com', 'User-Agent': 'e2e', ...(opts.headers ?? {}) };
  let body: string | null = null;
  if (opts.body !== undefined) {
    body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    headers['Content-Type'] ??= 'application/json';
    if (opts.base64) body = Buffer.from(body, 'utf8').toString('base64');
  }
  return {
    httpMethod: method,
    path,
    resource: path,
    headers,
    multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
    body,
    isBase64Encoded: opts.base64 ?? false,
    pathParameters: null,
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    stageVariables: null,
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      authorizer: null,
      httpMethod: method,
      path: `/prod${path}`,
      protocol: 'HTTP/1.1',
      requestId: `req-${Math.random().toString(36).slice(2)}`,
      requestTimeEpoch: Date.now(),
      resourceId: 'res',
      resourcePath: path,
      stage: 'prod',
      identity: {
        accessKey: null,
        accountId: null,
        apiKey: null,
        apiKeyId: null,
        caller: null,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp: '203.0.113.9',
        user: null,
        userAgent: 'e2e',
        userArn: null,
      },
    },
  };
}

/** Invokes the handler with a collecting writable; resolves once the stream has finished. */
async function invokeHandler(ev: APIGatewayProxyEvent) {
  const chunks: string[] = [];
  const writeTimes: number[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      chunks.push(chunk.toString());
      writeTimes.push(Date.now());
      cb();
    },
  });
  const finished = new Promise<void>((resolve) => stream.on('finish', () => resolve()));
  const metaBefore = metas.length;
  await handler(ev, stream);
  await finished;
  const started = metas.slice(metaBefore);
  expect(started).toHaveLength(1);
  expect(started[0].stream).toBe(stream);
  return { meta: started[0].meta, body: chunks.join(''), chunks, ended: stream.writableFinished, requestId: ev.requestContext.requestId };
}

const chat = (extra: Record<string, unknown> = {}) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello from lambda' }], ...extra });

test('streamed chat completion: 200 event-stream metadata, chunks then [DONE]', async () => {
  const before = h.fakes.openai.requests.length;
  const { meta, body, chunks, ended } = await invokeHandler(event('POST', '/v1/chat/completions', { body: chat({ stream: true }), headers: { Authorization: `Bearer ${invoke}` } }));
  expect(meta.statusCode).toBe(200);
  expect(meta.headers['content-type']).toMatch(/^text\/event-stream/);
  expect(meta.headers['cache-control']).toBe('no-store');
  expect(ended).toBe(true);
  expect(chunks.length).toBeGreaterThan(2);
  const events = parseSse(body);
  expect(events.at(-1)?.data).toBe('[DONE]');
  expect(
    events
      .slice(0, -1)
      .map((e) => JSON.parse(e.data).choices?.[0]?.delta?.content ?? '')
      .join(''),
  ).toBe('Echo: hello from lambda');
  expect(h.fakes.openai.requests.length).toBe(before + 1);
  expect(h.fakes.openai.requests.at(-1)?.headers.authorization).toBe(`Bearer ${CANARY}`);
});

test('buffered Anthropic-format call with x-api-key and a base64-encoded body', async () => {
  const { meta, body } = await invokeHandler(
    event('POST', '/v1/messages', { body: { model: 'claude-haiku-4-5', max_tokens: 20, messages: [{ role: 'user', content: 'hi' }] }, headers: { 'X-Api-Key': invoke }, base64: true }),
  );
  expect(meta.statusCode).toBe(200);
  expect(meta.headers['content-type']).toMatch(/^application\/json/);
  expect(JSON.parse(body)).toMatchObject({ type: 'message', content: [{ type: 'text', text: 'Echo: hi' }] });
});

test('GET /v1/models', async () => {
  const { meta, body } = await invokeHandler(event('GET', '/v1/models', { headers: { Authorization: `Bearer ${invoke}` } }));
  expect(meta.statusCode).toBe(200);
  expect(JSON.parse(body).object).toBe('list');
});

test('errors: status and headers in the metadata, error shape in the body, stream ended', async () => {
  const bad = await invokeHandler(event('POST', '/v1/chat/completions', { body: chat(), headers: { Authorization: 'Bearer sk-nope' } }));
  expect(bad.meta.statusCode).toBe(401);
  expect(bad.meta.headers['content-type']).toMatch(/^application\/json/);
  expect(JSON.parse(bad.body).error.code).toBe('invalid_api_key');
  expect(bad.ended).toBe(true);

  const missing = await invokeHandler(event('POST', '/v1/nope', { body: chat() }));
  expect(missing.meta.statusCode).toBe(404);

  h.fakes.script('openai', [
    { kind: 'status', status: 500 },
    { kind: 'status', status: 500 },
  ]);
  const failed = await invokeHandler(event('POST', '/v1/chat/completions', { body: chat({ model: 'gpt-4o' }), headers: { Authorization: `Bearer ${invoke}` } }));
  expect(failed.meta.statusCode).toBe(502);
  expect(JSON.parse(failed.body).error.code).toBe('upstream_unavailable');
});

test('a broken upstream stream ends the Lambda stream with an error event', async () => {
  h.fakes.script('openai', [{ kind: 'break-stream', afterEvents: 2 }]);
  const { meta, body, ended } = await invokeHandler(event('POST', '/v1/chat/completions', { body: chat({ stream: true }), headers: { Authorization: `Bearer ${invoke}` } }));
  expect(meta.statusCode).toBe(200);
  expect(ended).toBe(true);
  expect(body).not.toContain('[DONE]');
  expect(JSON.parse(parseSse(body).at(-1)!.data).error).toBeDefined();
});

test('one EMF metric line per request on stdout, and no canary in any output', async () => {
  const lines = capture.lines
    .join('')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
  const emf = lines.filter((l) => l._aws);
  // Requests with a principal: stream, messages, models, 502, broken stream.
  expect(emf.length).toBe(5);
  expect(emf.every((l) => l._aws.CloudWatchMetrics[0].Namespace === 'SovereignRouter' && l.Region === h.cell.config.region)).toBe(true);
  expect(emf.map((l) => l.Decision).sort()).toEqual(['failed', 'ok', 'ok', 'ok', 'upstream_stream_broken']);
  expect(canaryHits(capture.text(), [CANARY])).toEqual([]);
  expect(capture.text()).not.toContain(invoke);
});

test("the handler used its own SDK clients (through AWS_ENDPOINT_URL) and wrote usage to the cell's table", async () => {
  // The harness's clients count their commands: the handler's requests added none of them.
  const harnessCalls = h.ddbCalls.length + h.kmsCalls.length;
  await invokeHandler(event('GET', '/v1/models', { headers: { Authorization: `Bearer ${invoke}` } }));
  expect(h.ddbCalls.length + h.kmsCalls.length).toBe(harnessCalls);
  const tables = await dumpTables(h);
  expect(tables.split('\n').filter((l) => l.includes('"REQ#lambda-co"')).length).toBe(6);
  expect(canaryHits(tables, [CANARY])).toEqual([]);
});

test('the Lambda stream is finished while its settle write is held; the handler returns after it went through', async () => {
  // The settle write is held at the proxy (not delayed by a time): the stream must finish while it
  // is held, and the handler return only after it went through; an order, not a race on a loaded machine.
  try {
    for (const stream of [false, true]) {
      const settle = holdCalls(proxy, isSettle);
      const chunks: string[] = [];
      let finished = false;
      let returned = false;
      const out = new Writable({
        write(chunk: Buffer | string, _enc, cb) {
          chunks.push(chunk.toString());
          cb();
        },
      });
      out.on('finish', () => (finished = true));
      const run = handler(event('POST', '/v1/chat/completions', { body: chat({ stream }), headers: { Authorization: `Bearer ${invoke}` } }), out);
      void run.then(() => (returned = true));
      try {
        await waitUntil(() => finished && settle.held() > 0, 'the stream to finish while the settle write is held', 20_000);
        expect(chunks.join('')).toContain(stream ? '[DONE]' : '"choices"');
        expect(returned).toBe(false);
      } finally {
        settle.release();
      }
      await run;
      expect(returned).toBe(true);
    }
  } finally {
    proxy.rule = () => undefined;
  }
  expect(proxy.calls.filter(isSettle).length).toBeGreaterThanOrEqual(2);
});

const text0 = (v: unknown) => JSON.stringify(v);

test('one structured log line per request, naming the request id of the x-request-id header, and no secret in it', async () => {
  const mark = capture.lines.length;
  // A client's own x-request-id is not taken: log lines carry only ids the gateway made.
  const ok = await invokeHandler(event('POST', '/v1/chat/completions', { body: chat(), headers: { Authorization: `Bearer ${invoke}`, 'X-Request-Id': 'forged-id-0001' } }));
  const denied = await invokeHandler(event('POST', '/v1/chat/completions', { body: chat({ model: 'no-such-model' }), headers: { Authorization: `Bearer ${invoke}` } }));
  const unauth = await invokeHandler(event('POST', '/v1/chat/completions', { body: chat(), headers: { Authorization: 'Bearer sk-nope' } }));
  const lines = capture.lines
    .slice(mark)
    .join('')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .filter((l) => l.message === 'request');
  expect(lines).toHaveLength(3);
  for (const [res, line] of [ok, denied, unauth].map((r, i) => [r, lines[i]] as const)) {
    // API Gateway's request id is the request's id: header, log line and usage record agree.
    expect(res.meta.headers['x-request-id']).toBe(res.requestId);
    expect(line.requestId).toBe(res.requestId);
  }
  expect(text0(lines)).not.toContain('forged-id-0001');
  expect(lines[0]).toMatchObject({ service: 'router', level: 'INFO', tenantId: 'lambda-co', route: 'chat', provider: 'openai', model: 'gpt-4o-mini', status: 200, decision: 'ok', fallbackChain: 'openai/gpt-4o-mini:ok' });
  expect(lines[0].tokenId).toMatch(/\S/);
  expect(lines[0].latencyMs).toBeGreaterThanOrEqual(0);
  expect(lines[0].costUsd).toBeGreaterThan(0);
  expect(lines[1]).toMatchObject({ tenantId: 'lambda-co', status: 400, decision: 'denied:model_not_routable', denialReason: 'model_not_routable' });
  expect(lines[2]).toMatchObject({ status: 401, decision: 'denied:invalid_api_key', denialReason: 'invalid_api_key' });
  expect(lines[2].tenantId).toBeUndefined();
  const text = JSON.stringify(lines);
  expect(canaryHits(text, [CANARY])).toEqual([]);
  expect(text).not.toContain(invoke);
  expect(text).not.toContain('hello from lambda');
  expect(text).not.toContain('Echo:');
});

test('a KMS that hangs: the request fails cleanly with 503 well before its deadline, the reservation is given back, and the next request works', async () => {
  const { awsCallBudget, worstCaseCallMs } = await import('../../lambda/handlers/aws-clients');
  const deadlineMs = Number(process.env.REQUEST_DEADLINE_MS);
  const budget = awsCallBudget(deadlineMs);
  expect(worstCaseCallMs(budget)).toBeLessThanOrEqual(deadlineMs / 4);
  proxy.rule = (c) => (c.target === 'TrentService.Decrypt' ? { hang: true } : undefined);
  const decryptsBefore = proxy.calls.filter((c) => c.target === 'TrentService.Decrypt').length;
  const t0 = Date.now();
  try {
    const res = await invokeHandler(event('POST', '/v1/chat/completions', { body: chat(), headers: { Authorization: `Bearer ${invoke}` } }));
    const elapsed = Date.now() - t0;
    expect(res.meta.statusCode).toBe(503);
    expect(JSON.parse(res.body).error.code).toBe('key_service_unavailable');
    expect(res.meta.headers['x-request-id']).toBe(res.requestId);
    // Every attempt timed out (one retry on a fresh connection), and no more.
    expect(proxy.calls.filter((c) => c.target === 'TrentService.Decrypt').length - decryptsBefore).toBe(budget.maxAttempts);
    expect(elapsed).toBeGreaterThanOrEqual(budget.maxAttempts * budget.requestTimeoutMs - 100);
    expect(elapsed).toBeLessThan(worstCaseCallMs(budget) + 2_000);
    expect(elapsed).toBeLessThan(deadlineMs);
  } finally {
    proxy.rule = () => undefined;
  }
  const ok = await invokeHandler(event('POST', '/v1/chat/completions', { body: chat(), headers: { Authorization: `Bearer ${invoke}` } }));
  expect(ok.meta.statusCode).toBe(200);
}, 30_000);

test('a response stream that closes mid-answer (the client left) aborts the upstream call; the record says aborted', async () => {
  // 400 words streamed 40 ms apart: over 16 s if nobody stopped it, so the 8 s bound below tells
  // a stopped stream from one that ran on with room for a loaded runner (80 words, 3.2 s against
  // a 3 s bound from the handler's start, left the setup and the end stage little).
  const long = Array.from({ length: 400 }, (_, i) => `w${i}`).join(' ');
  h.fakes.script('openai', [{ kind: 'drip', intervalMs: 40 }]);
  const before = h.fakes.openai.requests.length;
  let closedAt = 0;
  let writes = 0;
  const out = new Writable({
    write(_chunk: Buffer | string, _enc, cb) {
      cb();
      // After three chunks the stream is closed under the handler, as when API Gateway drops the client.
      if (++writes === 3) {
        closedAt = Date.now();
        out.destroy();
      }
    },
  });
  out.on('error', () => undefined);
  const ev = event('POST', '/v1/chat/completions', { body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: long }], stream: true }, headers: { Authorization: `Bearer ${invoke}` } });
  const t0 = Date.now();
  await handler(ev, out);
  expect(Date.now() - t0).toBeLessThan(8_000);
  const upstream = h.fakes.openai.requests[before];
  expect(upstream.abortedAt).toBeDefined();
  expect(upstream.abortedAt! - closedAt).toBeLessThan(1_000);
  const line = (await dumpTables(h)).split('\n').find((l) => l.includes(ev.requestContext.requestId) && l.includes('"REQ#lambda-co"'));
  expect(line).toBeDefined();
  const item = JSON.parse(line!);
  expect(item.aborted).toEqual({ BOOL: true });
  expect(item.decision).toEqual({ S: 'client_aborted' });
  expect(Number(item.outputTokens.N)).toBeGreaterThan(0);
});
