/**
 * Guardrails on the router (issue 14 point 4), production wiring over moto and the fake
 * providers: refusals are 400s in the client's format that never echo the matched text, and
 * come before any KMS call or provider request (counted); redaction changes what the provider
 * receives; tenant and token guardrails combine; the usage record and the metric line carry the
 * decision and the rule names only.
 */
import { RouterHarness, startRouterHarness } from '../support/router-harness';

let h: RouterHarness;
let invoke: string;
let adminToken: string;
const CARD = '4111 1111 1111 1111';
const EMAIL = 'alice.smith@example.com';
const IBAN = 'DE89 3704 0044 0532 0130 00';

beforeAll(async () => {
  h = await startRouterHarness();
  ({ invokeToken: invoke, adminToken } = await h.tenant('guarded', {
    policy: {
      guardrails: {
        personalData: { card: 'refuse', iban: 'refuse', email: 'redact', phone: 'redact' },
        blockedTerms: ['Project Nightingale'],
        maxInputTokens: 200,
      },
    },
  }));
});
afterAll(() => h?.close());

const chat = (messages: unknown[], extra: Record<string, unknown> = {}) => JSON.stringify({ model: 'gpt-4o-mini', messages, ...extra });
const anthropic = (messages: unknown[], extra: Record<string, unknown> = {}) => JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 50, messages, ...extra });

/** The call's KMS commands, provider requests and metric lines (counting fakes). */
async function counted<T>(fn: () => Promise<T>): Promise<{ out: T; kms: string[]; provider: number; metrics: string[]; logs: string[] }> {
  const [kms, provider, metrics, logs] = [h.kmsCalls.length, h.fakes.requests.length, h.metrics.length, h.logs.length];
  const out = await fn();
  return { out, kms: h.kmsCalls.slice(kms), provider: h.fakes.requests.length - provider, metrics: h.metrics.slice(metrics), logs: h.logs.slice(logs) };
}

test.each([
  ['a card number (OpenAI)', '/v1/chat/completions', chat([{ role: 'user', content: `charge ${CARD}` }]), 'personal_data:card', CARD],
  ['an IBAN (Anthropic)', '/v1/messages', anthropic([{ role: 'user', content: `send to ${IBAN}` }]), 'personal_data:iban', IBAN],
  ['a blocked term, fullwidth and zero-width (OpenAI)', '/v1/chat/completions', chat([{ role: 'user', content: 'ＰＲＯＪＥＣＴ night\u200Bingale' }]), 'blocked_term', 'night'],
  ['a card split over two content parts (Anthropic)', '/v1/messages', anthropic([{ role: 'user', content: [{ type: 'text', text: 'card 4111 1111' }, { type: 'text', text: ' 1111 1111' }] }]), 'personal_data:card', '1111'],
  ['too many input tokens (OpenAI)', '/v1/chat/completions', chat([{ role: 'user', content: 'word '.repeat(200) }]), 'max_input_tokens', 'word word'],
])('refuses %s with a 400 before any KMS call or provider request', async (_what, path, body, rule, secretText) => {
  const { out, kms, provider, metrics, logs } = await counted(() => h.call({ path, body }, invoke));
  const { sink, json, record } = out;
  expect(sink.status).toBe(400);
  if (path === '/v1/messages') expect(json).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', code: 'guardrail_refused', rules: rule } });
  else expect(json).toMatchObject({ error: { type: 'invalid_request_error', code: 'guardrail_refused', rules: rule } });
  expect(kms).toEqual([]);
  expect(provider).toBe(0);
  expect(record).toMatchObject({ status: 400, decision: 'denied:guardrail_refused', guardrails: { action: 'refused', rules: [rule] } });
  // The matched text is in none of: the response, the usage record, the metric line, the log line.
  for (const text of [sink.body, JSON.stringify(record), ...metrics, ...logs]) expect(text).not.toContain(secretText);
  const metric = JSON.parse(metrics[0]);
  expect(metric).toMatchObject({ Guardrail: 'refused', GuardrailRefusals: 1, GuardrailRedactions: 0, guardrailRules: rule, Decision: 'denied' });
});

test('redacts e-mail addresses and phone numbers before the provider sees them (OpenAI and Anthropic formats, streaming too)', async () => {
  const openai = await counted(() => h.call({ path: '/v1/chat/completions', body: chat([{ role: 'user', content: `mail ${EMAIL} or call +49 30 1234567` }]) }, invoke));
  expect(openai.out.sink.status).toBe(200);
  expect(openai.kms).toEqual(['DecryptCommand']);
  expect((h.fakes.openai.requests.at(-1)?.body as any).messages[0].content).toBe('mail [REDACTED:email] or call [REDACTED:phone]');
  expect(openai.out.record?.guardrails).toEqual({ action: 'redacted', rules: ['personal_data:email', 'personal_data:phone'] });
  expect(JSON.parse(openai.metrics[0])).toMatchObject({ Guardrail: 'redacted', GuardrailRedactions: 1, guardrailRules: 'personal_data:email,personal_data:phone' });

  // An e-mail split over two messages, from an Anthropic client to an Anthropic target, streamed.
  const split = await h.call(
    { path: '/v1/messages', body: anthropic([{ role: 'user', content: 'write to alice.smith@' }, { role: 'assistant', content: 'ok' }, { role: 'user', content: 'example.com now' }], { stream: true }) },
    invoke,
  );
  expect(split.sink.status).toBe(200);
  expect(split.sink.body).toContain('event: message_stop');
  const sent = (h.fakes.anthropic.requests.at(-1)?.body as any).messages;
  expect(JSON.stringify(sent)).not.toContain('alice');
  expect(sent[0].content).toBe('write to [REDACTED:email]');
  expect(split.record?.guardrails?.action).toBe('redacted');
});

test('clean requests pass and are recorded as passed', async () => {
  const { sink, record } = await h.call({ path: '/v1/chat/completions', body: chat([{ role: 'user', content: 'Order 12345678 shipped on 2024-01-15.' }]) }, invoke);
  expect(sink.status).toBe(200);
  expect(record?.guardrails).toEqual({ action: 'passed', rules: [] });
});

test('a token adds its own guardrails to the tenant (never lifts them); tenants without guardrails are not judged', async () => {
  const created = await h.vault(adminToken, 'POST', '/vault/tokens', {
    role: 'invoke',
    label: 'strict',
    limits: { guardrails: { personalData: { email: 'refuse', card: 'redact' }, blockedTerms: ['quarterly numbers'] } },
  });
  expect(created.status).toBe(201);
  const strict = created.json.token as string;
  const email = await h.call({ path: '/v1/chat/completions', body: chat([{ role: 'user', content: `to ${EMAIL}` }]) }, strict);
  expect([email.sink.status, email.json.error.code, email.record?.guardrails?.rules]).toEqual([400, 'guardrail_refused', ['personal_data:email']]);
  // The token asks to redact cards; the tenant refuses them, and refuse wins.
  const card = await h.call({ path: '/v1/chat/completions', body: chat([{ role: 'user', content: CARD }]) }, strict);
  expect(card.record?.guardrails?.rules).toEqual(['personal_data:card']);
  const term = await h.call({ path: '/v1/chat/completions', body: chat([{ role: 'user', content: 'the QUARTERLY numbers' }]) }, strict);
  expect(term.record?.guardrails).toEqual({ action: 'refused', rules: ['blocked_term'] });
  // The tenant's own token does not have the token's term.
  const other = await h.call({ path: '/v1/chat/completions', body: chat([{ role: 'user', content: 'the QUARTERLY numbers' }]) }, invoke);
  expect(other.sink.status).toBe(200);

  const { invokeToken: plain } = await h.tenant('unguarded');
  const free = await h.call({ path: '/v1/chat/completions', body: chat([{ role: 'user', content: `charge ${CARD}` }]) }, plain);
  expect(free.sink.status).toBe(200);
  expect(free.record?.guardrails).toBeUndefined();
});

test('the admin API validates guardrail policy and refuses unknown fields without echoing them', async () => {
  const bad = await h.admin('PUT', '/admin/tenants/guarded/policy', { policy: { guardrails: { personalData: { ssn: 'refuse' } } } });
  expect(bad.status).toBe(400);
  const zeroWidth = await h.admin('PUT', '/admin/tenants/guarded/policy', { policy: { guardrails: { blockedTerms: ['\u200B'] } } });
  expect(zeroWidth.status).toBe(400);
  expect(zeroWidth.json.error.message).toContain('guardrails.blockedTerms.0');
});

test('Anthropic document blocks with text sources are judged: refused before KMS, or redacted before the provider', async () => {
  const doc = (data: string) => ({ type: 'document', source: { type: 'text', media_type: 'text/plain', data } });
  const refused = await counted(() => h.call({ path: '/v1/messages', body: anthropic([{ role: 'user', content: [doc('Project Nightingale alice@example.com'), { type: 'text', text: 'summarize' }] }]) }, invoke));
  expect(refused.out.sink.status).toBe(400);
  expect(refused.out.json).toMatchObject({ type: 'error', error: { code: 'guardrail_refused' } });
  expect([refused.kms, refused.provider]).toEqual([[], 0]);
  for (const text of [refused.out.sink.body, JSON.stringify(refused.out.record), ...refused.metrics, ...refused.logs]) expect(text).not.toContain('alice');

  // Each e-mail ends with '!' so the next segment is not glued onto its domain (see README, Splitting).
  const inTool = [{ type: 'tool_result', tool_use_id: 't1', content: [doc(`reply to ${EMAIL}!`)] }];
  const redacted = await counted(() => h.call({ path: '/v1/messages', body: anthropic([{ role: 'user', content: [doc(`mail ${EMAIL}!`), { type: 'text', text: 'summarize' }] }, { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'read', input: {} }] }, { role: 'user', content: inTool }]) }, invoke));
  expect(redacted.out.sink.status).toBe(200);
  expect(redacted.provider).toBe(1);
  const sent = (h.fakes.anthropic.requests.at(-1)?.body as any).messages;
  expect(JSON.stringify(sent)).not.toContain('alice');
  expect(sent[0].content[0]).toEqual({ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'mail [REDACTED:email]!' } });
  expect(sent[2].content[0].content[0].source.data).toBe('reply to [REDACTED:email]!');
  expect(redacted.out.record?.guardrails).toEqual({ action: 'redacted', rules: ['personal_data:email'] });
});
