/**
 * Amazon Bedrock Guardrails (ApplyGuardrail) as an additional guardrail (issue 14 point 4), through
 * the production router wiring over moto and a fake Bedrock runtime on loopback that verifies
 * SigV4 itself: an intervention refuses with the usual guardrail 400 before any KMS call or
 * provider request; the guardrail sees the built-in stage's redacted text, signed for the cell's
 * region; no verdict (down, throttled, denied, unknown guardrail, no client) fails closed; another
 * region's endpoint is refused at construction; malformed ids are refused by the policy schema.
 */
import { BedrockGuardrailClient } from '../../lambda/adapters/bedrock-guardrail';
import { MemorySink } from '../../lambda/core/router/response-sink';
import { canaryHits, makeCanary } from '../support/canary';
import { FAKE_AWS_CREDENTIALS, FakeBedrock, startFakeBedrock } from '../support/fake-bedrock';
import { dumpTables, RouterHarness, startRouterHarness } from '../support/router-harness';

const REGION = 'eu-central-1';
const GUARDRAIL = { guardrailId: 'gr7xk2abc9', guardrailVersion: '3' };
const OPENAI_KEY = makeCanary('openai');
const EMAIL = 'alice.smith@example.com';
const credentials = async () => ({ ...FAKE_AWS_CREDENTIALS });
let bedrock: FakeBedrock;
let h: RouterHarness;
let invoke: string;
let adminToken: string;
let router: RouterHarness['router'];

beforeAll(async () => {
  bedrock = await startFakeBedrock({ region: REGION, key: 'unused-bedrock-key' });
  bedrock.guardrails.add(`${GUARDRAIL.guardrailId}:${GUARDRAIL.guardrailVersion}`);
  bedrock.guardrails.add('tokenguard1:DRAFT');
  h = await startRouterHarness({ region: REGION });
  // The fake OpenAI accepts the canary key: the tenant below stores it.
  h.fakes.setKey('openai', OPENAI_KEY);
  ({ invokeToken: invoke, adminToken } = await h.tenant('bedrock-guarded', {
    keys: { openai: OPENAI_KEY },
    policy: { guardrails: { personalData: { email: 'redact' }, bedrock: GUARDRAIL } },
  }));
  router = h.makeRouter({ guardrailService: new BedrockGuardrailClient({ region: REGION, endpoint: bedrock.baseUrl, credentials, timeoutMs: 1_000 }) });
}, 60_000);
afterAll(async () => {
  await h?.close();
  await bedrock?.close();
});
beforeEach(() => bedrock.reset());

const chat = (messages: unknown[]) => JSON.stringify({ model: 'gpt-4o-mini', messages });
const anthropic = (messages: unknown[]) => JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 50, messages });

/** One request through `app`, with the KMS commands, provider requests and metric lines it caused. */
async function call(path: string, body: string, token = invoke, app = router) {
  const [kms, provider, metrics, logs] = [h.kmsCalls.length, h.fakes.requests.length, h.metrics.length, h.logs.length];
  const sink = new MemorySink();
  const record = await app({ method: 'POST', path, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body, sourceIp: '203.0.113.7' }, sink);
  let json: any;
  try {
    json = JSON.parse(sink.body);
  } catch {
    json = sink.body;
  }
  return { sink, json, record, kms: h.kmsCalls.slice(kms), provider: h.fakes.requests.length - provider, metrics: h.metrics.slice(metrics), logs: h.logs.slice(logs) };
}
const applies = () => bedrock.requests.filter((r) => r.operation === 'apply-guardrail');

describe('an intervening guardrail', () => {
  test.each([
    ['OpenAI', '/v1/chat/completions', chat([{ role: 'user', content: `mail ${EMAIL} about the forbidden-topic` }])],
    ['Anthropic', '/v1/messages', anthropic([{ role: 'user', content: [{ type: 'text', text: `mail ${EMAIL} about the forbidden-topic` }] }])],
  ])('refuses (%s format) with 400 guardrail_refused before any KMS call or provider request', async (format, path, body) => {
    const out = await call(path, body);
    expect(out.sink.status).toBe(400);
    const error = format === 'Anthropic' ? (expect(out.json.type).toBe('error'), out.json.error) : out.json.error;
    expect(error).toMatchObject({ type: 'invalid_request_error', code: 'guardrail_refused', rules: 'personal_data:email,bedrock_guardrail' });
    expect(error.message).toContain('Amazon Bedrock guardrail');
    expect(out.kms).toEqual([]);
    expect(out.provider).toBe(0);
    expect(out.record).toMatchObject({ status: 400, decision: 'denied:guardrail_refused', guardrails: { action: 'refused', rules: ['personal_data:email', 'bedrock_guardrail'] } });
    expect(JSON.parse(out.metrics[0])).toMatchObject({ Guardrail: 'refused', GuardrailRefusals: 1, guardrailRules: 'personal_data:email,bedrock_guardrail' });
    // Neither the text nor the guardrail's own output goes anywhere.
    for (const text of [out.sink.body, JSON.stringify(out.record), ...out.metrics, ...out.logs]) {
      expect(text).not.toContain('forbidden-topic');
      expect(text).not.toContain(EMAIL);
      expect(text).not.toContain('FAKE-GUARDRAIL-OUTPUT');
    }
    // The guardrail got one valid SigV4 request for the cell's region, with the redacted text.
    const [req] = applies();
    expect(applies()).toHaveLength(1);
    expect(req.path).toBe(`/guardrail/${GUARDRAIL.guardrailId}/version/${GUARDRAIL.guardrailVersion}/apply`);
    expect(req.guardrail).toEqual({ id: GUARDRAIL.guardrailId, version: '3' });
    expect(req.auth).toBe('sigv4');
    expect(req.sigv4).toMatchObject({ accessKeyId: FAKE_AWS_CREDENTIALS.accessKeyId, region: REGION, service: 'bedrock' });
    expect(req.body).toEqual({ source: 'INPUT', content: [{ text: { text: 'mail [REDACTED:email] about the forbidden-topic' } }] });
  });

  test('a conversation goes to the guardrail as one text block: splitting across messages evades nothing', async () => {
    const out = await call('/v1/chat/completions', chat([{ role: 'system', content: 'be brief' }, { role: 'user', content: 'tell me' }, { role: 'user', content: [{ type: 'text', text: 'about the forbidden-topic' }] }]));
    expect([out.sink.status, out.json.error.code, out.provider]).toEqual([400, 'guardrail_refused', 0]);
    expect(applies()[0].body).toEqual({ source: 'INPUT', content: [{ text: { text: 'be brief\ntell me\nabout the forbidden-topic' } }] });
  });

  test('embedding inputs are judged as separate blocks, and one intervention refuses', async () => {
    const out = await call('/v1/embeddings', JSON.stringify({ model: 'text-embedding-3-small', input: ['harmless', 'forbidden-topic here'] }));
    expect([out.sink.status, out.json.error.code, out.kms, out.provider]).toEqual([400, 'guardrail_refused', [], 0]);
    expect(applies()[0].body).toEqual({ source: 'INPUT', content: [{ text: { text: 'harmless' } }, { text: { text: 'forbidden-topic here' } }] });
  });
});

test("NONE passes: 200, the provider gets the redacted request, and the record keeps the built-in decision", async () => {
  const out = await call('/v1/chat/completions', chat([{ role: 'user', content: `write to ${EMAIL}` }]));
  expect([out.sink.status, out.sink.status === 200 ? '' : out.sink.body]).toEqual([200, '']);
  expect(out.provider).toBe(1);
  expect(out.kms.length).toBeGreaterThan(0);
  expect(JSON.stringify(h.fakes.requests.at(-1)!.body)).toContain('[REDACTED:email]');
  expect(out.record?.guardrails).toEqual({ action: 'redacted', rules: ['personal_data:email'] });
  expect(applies()).toHaveLength(1);
});

test('a token can add its own Bedrock guardrail; both are applied', async () => {
  const created = await h.vault(adminToken, 'POST', '/vault/tokens', { role: 'invoke', label: 'strict', limits: { guardrails: { bedrock: { guardrailId: 'tokenguard1', guardrailVersion: 'DRAFT' } } } });
  expect(created.status).toBe(201);
  const out = await call('/v1/chat/completions', chat([{ role: 'user', content: 'hello' }]), created.json.token);
  expect(out.sink.status).toBe(200);
  expect(applies().map((r) => r.guardrail)).toEqual([{ id: GUARDRAIL.guardrailId, version: '3' }, { id: 'tokenguard1', version: 'DRAFT' }]);
});

describe('no verdict fails closed: nothing is sent unchecked', () => {
  test.each([
    ['5xx', { kind: 'status' as const, status: 503, type: 'ServiceUnavailableException' }, 503, 'guardrail_unavailable'],
    ['throttling', { kind: 'status' as const, status: 429, type: 'ThrottlingException' }, 503, 'guardrail_unavailable'],
    ['access denied', { kind: 'status' as const, status: 403, type: 'AccessDeniedException' }, 502, 'guardrail_error'],
  ])('%s → %s %s, before any KMS call or provider request', async (_what, behavior, status, code) => {
    bedrock.script([behavior]);
    const out = await call('/v1/chat/completions', chat([{ role: 'user', content: 'hello' }]));
    expect([out.sink.status, out.json.error.code, out.kms, out.provider]).toEqual([status, code, [], 0]);
    expect(out.record).toMatchObject({ status, decision: `failed:${code}` });
  });

  test('an unknown guardrail version is a 502 naming the guardrail', async () => {
    const { invokeToken } = await h.tenant('bedrock-unknown', { policy: { guardrails: { bedrock: { guardrailId: 'nosuchguardrail', guardrailVersion: '9' } } } });
    const out = await call('/v1/chat/completions', chat([{ role: 'user', content: 'hello' }]), invokeToken);
    expect([out.sink.status, out.json.error.code, out.kms, out.provider]).toEqual([502, 'guardrail_error', [], 0]);
    expect(out.json.error.message).toContain('nosuchguardrail');
    expect(out.json.error.message).toContain('ResourceNotFoundException');
  });

  test('an endpoint that is down (closed port) or slow is a 503', async () => {
    const down = h.makeRouter({ guardrailService: new BedrockGuardrailClient({ region: REGION, endpoint: 'http://127.0.0.1:9', credentials, timeoutMs: 500 }) });
    const out = await call('/v1/chat/completions', chat([{ role: 'user', content: 'hello' }]), invoke, down);
    expect([out.sink.status, out.json.error.code, out.kms, out.provider]).toEqual([503, 'guardrail_unavailable', [], 0]);
    const slow = h.makeRouter({
      guardrailService: new BedrockGuardrailClient({ region: REGION, endpoint: bedrock.baseUrl, credentials, timeoutMs: 50, fetch: (async (_u: unknown, init?: RequestInit) => new Promise((_r, reject) => init?.signal?.addEventListener('abort', () => reject(new Error('aborted'))))) as typeof fetch }),
    });
    const late = await call('/v1/chat/completions', chat([{ role: 'user', content: 'hello' }]), invoke, slow);
    expect([late.sink.status, late.json.error.code, late.kms, late.provider]).toEqual([503, 'guardrail_unavailable', [], 0]);
  });

  test('a cell without a guardrail client refuses such tenants (503), never skips the check', async () => {
    const out = await call('/v1/chat/completions', chat([{ role: 'user', content: 'hello' }]), invoke, h.router);
    expect([out.sink.status, out.json.error.code, out.kms, out.provider]).toEqual([503, 'guardrail_unavailable', [], 0]);
  });

  test('an answer without a known action is not a pass', async () => {
    const odd = h.makeRouter({ guardrailService: new BedrockGuardrailClient({ region: REGION, endpoint: bedrock.baseUrl, credentials, fetch: (async () => new Response(JSON.stringify({ action: 'MAYBE' }), { status: 200 })) as typeof fetch }) });
    const out = await call('/v1/chat/completions', chat([{ role: 'user', content: 'hello' }]), invoke, odd);
    expect([out.sink.status, out.json.error.code, out.provider]).toEqual([502, 'guardrail_error', 0]);
  });
});

describe('the cell region only', () => {
  test("another region's endpoint, a non-AWS host or plain http is refused when the client is built", () => {
    const build = (endpoint: string) => () => new BedrockGuardrailClient({ region: REGION, endpoint, credentials });
    expect(build('https://bedrock-runtime.us-east-1.amazonaws.com')).toThrow(/outside the cell's region eu-central-1/);
    expect(build('https://bedrock-runtime.eu-central-1.evil.example')).toThrow(/must be https:\/\/bedrock-runtime\.eu-central-1\.amazonaws\.com/);
    expect(build('http://bedrock-runtime.eu-central-1.amazonaws.com')).toThrow(/must be https/);
    expect(() => new BedrockGuardrailClient({ region: REGION, credentials })).not.toThrow();
  });

  test('the signature is scoped to the cell region: an endpoint expecting another region rejects it (502)', async () => {
    bedrock.region = 'us-east-1';
    try {
      const out = await call('/v1/chat/completions', chat([{ role: 'user', content: 'hello' }]));
      expect([out.sink.status, out.json.error.code, out.provider]).toEqual([502, 'guardrail_error', 0]);
      expect(applies()[0].sigv4?.region).toBe(REGION);
    } finally {
      bedrock.region = REGION;
    }
  });
});

test.each([
  ['an ARN (names a region)', { guardrailId: 'arn:aws:bedrock:us-east-1:111122223333:guardrail/abc123', guardrailVersion: '1' }],
  ['a path in the id', { guardrailId: '../model/x', guardrailVersion: '1' }],
  ['upper case', { guardrailId: 'ABC', guardrailVersion: '1' }],
  ['version latest', { guardrailId: 'abc123', guardrailVersion: 'latest' }],
  ['version 0', { guardrailId: 'abc123', guardrailVersion: '0' }],
  ['a numeric version', { guardrailId: 'abc123', guardrailVersion: 1 }],
  ['an unknown field', { guardrailId: 'abc123', guardrailVersion: '1', region: 'us-east-1' }],
])('the policy refuses a Bedrock guardrail with %s', async (_what, bedrockRef) => {
  const res = await h.admin('PUT', '/admin/tenants/bedrock-guarded/policy', { policy: { guardrails: { bedrock: bedrockRef } } });
  expect(res.status).toBe(400);
  expect(JSON.stringify(res.json)).toContain('guardrails.bedrock');
});

test('the canary provider key and the role secret appear in no response, log, metric, stored record or guardrail request', async () => {
  await call('/v1/chat/completions', chat([{ role: 'user', content: 'forbidden-topic' }]));
  await call('/v1/chat/completions', chat([{ role: 'user', content: 'hello' }]));
  bedrock.script([{ kind: 'status', status: 403, type: 'AccessDeniedException' }]);
  const denied = await call('/v1/chat/completions', chat([{ role: 'user', content: 'hello' }]));
  const everything = [denied.sink.body, ...h.logs, ...h.metrics, await dumpTables(h), JSON.stringify(applies().map((r) => ({ h: r.headers, b: r.body })))].join('\n');
  expect(canaryHits(everything, [OPENAI_KEY, FAKE_AWS_CREDENTIALS.secretAccessKey])).toEqual([]);
  expect(h.fakes.requests.some((r) => JSON.stringify(r.headers).includes(OPENAI_KEY))).toBe(true);
});
