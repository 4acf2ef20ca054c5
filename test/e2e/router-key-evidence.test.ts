/**
 * Data-path evidence (threat model, issue #9 point 4): every secret the router opens can be traced
 * from the request's usage record to the KMS Decrypt that opened it. The record carries the exact
 * encryption context KMS received (app, region, tenant, provider, secret, version) and the time,
 * next to the request id, so CloudTrail's Decrypt events and the usage table join on them.
 */
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { InitializeMiddleware, MetadataBearer } from '@smithy/types';
import { CircuitBreaker } from '../../lambda/core/routing/circuit-breaker';
import { startRouterHarness, RouterHarness } from '../support/router-harness';

let h: RouterHarness;
let invoke: string;
let adminToken: string;
const TENANT = 'evidence-co';
/** Every Decrypt the KMS client sent, as the SDK serialized it. */
const decrypts: { context: Record<string, string>; at: number }[] = [];

beforeAll(async () => {
  h = await startRouterHarness();
  const capture: InitializeMiddleware<object, MetadataBearer> = (next, context) => (args) => {
    if (context.commandName === 'DecryptCommand') {
      const input = args.input as { EncryptionContext?: Record<string, string> };
      decrypts.push({ context: { ...input.EncryptionContext }, at: Date.now() });
    }
    return next(args);
  };
  h.cell.clients.kms.middlewareStack.add(capture, { step: 'initialize', name: 'captureDecryptContext' });
  ({ invokeToken: invoke, adminToken } = await h.tenant(TENANT, {
    policy: { routes: { duo: [{ provider: 'openai', model: 'gpt-4o-mini' }, { provider: 'anthropic', model: 'claude-haiku-4-5' }] } },
  }));
}, 60_000);
afterAll(() => h?.close());
beforeEach(() => {
  decrypts.length = 0;
});

const chat = (model: string) => JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }] });

/** The usage record as stored in the usage table (what an investigator queries). */
async function storedRecord(requestId: string): Promise<Record<string, any>> {
  const out = await h.cell.clients.doc.send(
    new QueryCommand({ TableName: h.cell.config.tables.usage, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': `REQ#${TENANT}` } }),
  );
  const item = (out.Items ?? []).find((i) => i.requestId === requestId);
  if (!item) throw new Error(`no usage record for ${requestId}`);
  return item;
}

async function currentVersion(provider: string): Promise<string> {
  const secrets = await h.vault(adminToken, 'GET', '/vault/secrets');
  const s = secrets.json.data.find((x: { provider: string; name: string }) => x.provider === provider && x.name === 'default');
  return String(s.version);
}

test('a served request: its usage record names the exact encryption context of its one Decrypt, with request id and time', async () => {
  const before = Date.now();
  const res = await h.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, invoke);
  expect(res.sink.status).toBe(200);
  const requestId = res.sink.headers['x-request-id'];
  expect(res.record?.requestId).toBe(requestId);

  expect(decrypts).toHaveLength(1);
  const expected = { app: 'sovereign-router', region: 'eu-central-1', tenant: TENANT, provider: 'openai', secret: 'default', version: await currentVersion('openai') };
  expect(decrypts[0].context).toEqual(expected);

  const stored = await storedRecord(requestId);
  expect(stored.keyUses).toHaveLength(1);
  expect(stored.keyUses[0].context).toEqual(decrypts[0].context);
  const at = Date.parse(stored.keyUses[0].at);
  expect(at).toBeGreaterThanOrEqual(before);
  expect(at).toBeLessThanOrEqual(decrypts[0].at);
  // The record's own identifiers agree with the context: the join key is unambiguous.
  expect(stored).toMatchObject({ requestId, tenantId: TENANT, provider: 'openai', secret: 'default' });
});

test('a fallback: one entry per Decrypt, in order, matching the chain', async () => {
  h.fakes.script('openai', [
    { kind: 'status', status: 500 },
    { kind: 'status', status: 500 },
  ]);
  const app = h.makeRouter({ breaker: new CircuitBreaker(), sleep: async () => undefined, random: () => 0.5 });
  const { MemorySink } = await import('../../lambda/core/router/response-sink');
  const sink = new MemorySink();
  const record = await app({ method: 'POST', path: '/v1/chat/completions', headers: { authorization: `Bearer ${invoke}`, 'content-type': 'application/json' }, body: chat('duo') }, sink);
  expect(sink.status).toBe(200);
  expect(record?.fallbackChain.map((s) => `${s.provider}:${s.outcome}`)).toEqual(['openai:status', 'openai:status', 'anthropic:ok']);
  // Each attempt opened its target's secret: two for openai (the retry re-decrypts), one for anthropic.
  expect(decrypts.map((d) => d.context.provider)).toEqual(['openai', 'openai', 'anthropic']);
  const stored = await storedRecord(record!.requestId);
  expect(stored.keyUses.map((u: { context: Record<string, string> }) => u.context)).toEqual(decrypts.map((d) => d.context));
});

test('a request refused before KMS has no key use on its record, and KMS saw nothing', async () => {
  const res = await h.call({ path: '/v1/chat/completions', body: chat('no-such-model-anywhere') }, invoke);
  expect(res.sink.status).toBe(400);
  expect(decrypts).toHaveLength(0);
  const stored = await storedRecord(res.record!.requestId);
  expect(stored.keyUses).toBeUndefined();
});

test('the evidence holds identifiers only: no key material, token or prompt', async () => {
  const res = await h.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, invoke);
  const stored = JSON.stringify(await storedRecord(res.record!.requestId));
  expect(stored).not.toContain('sk-openai-fake');
  expect(stored).not.toContain(invoke);
  expect(stored).not.toContain('hello');
  expect(Object.keys((JSON.parse(stored).keyUses[0] as { context: object }).context).sort()).toEqual(['app', 'provider', 'region', 'secret', 'tenant', 'version']);
});
