/**
 * The GuardrailService contract, run against its one adapter (BedrockGuardrailClient) and the
 * fake Bedrock runtime on loopback, which verifies SigV4 itself: NONE passes, an intervention is
 * reported, every failure is a typed error (unavailable: retry may pass; rejected: configuration),
 * and nothing outside the expected shapes reaches the wire.
 */
import { BedrockGuardrailClient } from '../../lambda/adapters/bedrock-guardrail';
import { GuardrailServiceError, type GuardrailService } from '../../lambda/core/guardrails';
import { FAKE_AWS_CREDENTIALS, FakeBedrock, startFakeBedrock } from '../support/fake-bedrock';

const REGION = 'eu-west-3';
const REF = { guardrailId: 'contract1', guardrailVersion: 'DRAFT' };
let bedrock: FakeBedrock;
let service: GuardrailService;

beforeAll(async () => {
  bedrock = await startFakeBedrock({ region: REGION, key: 'unused' });
  bedrock.guardrails.add('contract1:DRAFT');
  service = new BedrockGuardrailClient({ region: REGION, endpoint: bedrock.baseUrl, credentials: async () => ({ ...FAKE_AWS_CREDENTIALS }), timeoutMs: 1_000 });
});
afterAll(() => bedrock?.close());
beforeEach(() => bedrock.reset());

const failure = (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (e instanceof GuardrailServiceError ? `${e.kind}: ${e.message}` : `untyped: ${String(e)}`));

test('NONE → not intervened; GUARDRAIL_INTERVENED → intervened; blocks sent in order, SigV4 for the region', async () => {
  expect(await service.apply(REF, ['hello', 'world'])).toEqual({ intervened: false });
  expect(await service.apply(REF, ['fine', 'a FORBIDDEN-TOPIC'])).toEqual({ intervened: true });
  expect(bedrock.requests.map((r) => [r.operation, r.auth, r.sigv4?.region, r.body])).toEqual([
    ['apply-guardrail', 'sigv4', REGION, { source: 'INPUT', content: [{ text: { text: 'hello' } }, { text: { text: 'world' } }] }],
    ['apply-guardrail', 'sigv4', REGION, { source: 'INPUT', content: [{ text: { text: 'fine' } }, { text: { text: 'a FORBIDDEN-TOPIC' } }] }],
  ]);
});

test.each([
  [500, 'InternalServerException', 'unavailable: HTTP 500 InternalServerException'],
  [503, 'ServiceUnavailableException', 'unavailable: HTTP 503 ServiceUnavailableException'],
  [429, 'ThrottlingException', 'unavailable: HTTP 429 ThrottlingException'],
  [403, 'AccessDeniedException', 'rejected: HTTP 403 AccessDeniedException'],
  [400, 'ValidationException', 'rejected: HTTP 400 ValidationException'],
])('HTTP %i %s → %s', async (status, type, expected) => {
  bedrock.script([{ kind: 'status', status, type }]);
  expect(await failure(service.apply(REF, ['hello']))).toBe(expected);
});

test('an unknown guardrail is rejected (404 ResourceNotFoundException)', async () => {
  expect(await failure(service.apply({ guardrailId: 'missing1', guardrailVersion: '1' }, ['hello']))).toBe('rejected: HTTP 404 ResourceNotFoundException');
});

test('ids that bypassed the policy schema never reach the wire', async () => {
  for (const ref of [{ guardrailId: '../model/x', guardrailVersion: '1' }, { guardrailId: 'abc', guardrailVersion: '1/../../x' }]) {
    expect(await failure(service.apply(ref, ['hello']))).toBe('rejected: invalid guardrail id or version');
  }
  expect(bedrock.requests).toEqual([]);
});

test.each([
  ['a redirect (not followed)', () => new Response(null, { status: 307, headers: { location: 'https://elsewhere.example/' } }), /^rejected: HTTP 307$/],
  ['an answer without an action', () => new Response('{"outputs":[]}', { status: 200 }), /^rejected: the answer carries no known action$/],
  ['an answer that is not JSON', () => new Response('<html>', { status: 200 }), /^rejected: the answer carries no known action$/],
  ['an oversized answer', () => new Response('x'.repeat(2 * 1024 * 1024), { status: 200 }), /^unavailable: the answer broke off or was too large$/],
  ['a connection failure', () => Promise.reject(new TypeError('fetch failed')), /^unavailable: connection failed$/],
])('%s is never a pass', async (_what, answer, expected) => {
  const odd = new BedrockGuardrailClient({ region: REGION, endpoint: bedrock.baseUrl, credentials: async () => ({ ...FAKE_AWS_CREDENTIALS }), fetch: (async () => answer()) as typeof fetch });
  expect(await failure(odd.apply(REF, ['hello']))).toMatch(expected);
});

test('a timeout is unavailable and names the limit', async () => {
  const slow = new BedrockGuardrailClient({
    region: REGION,
    endpoint: bedrock.baseUrl,
    credentials: async () => ({ ...FAKE_AWS_CREDENTIALS }),
    timeoutMs: 30,
    fetch: ((_u: unknown, init?: RequestInit) => new Promise((_r, reject) => init?.signal?.addEventListener('abort', () => reject(new Error('aborted'))))) as typeof fetch,
  });
  expect(await failure(slow.apply(REF, ['hello']))).toBe('unavailable: no answer within 30 ms');
});
