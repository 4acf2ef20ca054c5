/**
 * DynamoGovernance's handling of DynamoDB outcomes that moto does not produce: transaction
 * conflicts (retried), outages (fail closed on reserve, never throw on settle/release), and which
 * limit a cancellation names. The client never leaves the process: a middleware answers.
 */
import { AttributeValue, DynamoDBClient, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import '../../../lambda/adapters/aws-sdk-rpc';
import { DynamoGovernance } from '../../../lambda/adapters/dynamo-governance';
import { ApiError } from '../../../lambda/core/http';
import type { AdmissionRequest } from '../../../lambda/core/router/governance';
import type { Limits, TenantPolicy } from '../../../lambda/core/tenant-model';

type Answer = (command: string, input: any) => unknown;

/** The adapter sends AttributeValues (util-dynamodb); the assertions read them back as documents. */
function documentForm(input: unknown): any {
  if (Array.isArray(input)) return input.map(documentForm);
  if (!input || typeof input !== 'object') return input;
  return Object.fromEntries(
    Object.entries(input).map(([k, v]) => [k, ['Item', 'Key', 'ExpressionAttributeValues', 'ExclusiveStartKey'].includes(k) && v && typeof v === 'object' ? unmarshall(v as Record<string, AttributeValue>) : documentForm(v)]),
  );
}

function client(answer: Answer) {
  const ddb = new DynamoDBClient({ region: 'eu-central-1', endpoint: 'http://127.0.0.1:9', credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, maxAttempts: 1 });
  const sent: { command: string; input: any }[] = [];
  // Added to the base client's stack: inputs are seen as sent (AttributeValues), read back as documents.
  ddb.middlewareStack.add(
    (_next, context) => async (args) => {
      const command = String(context.commandName);
      sent.push({ command, input: documentForm(args.input) });
      const out = answer(command, args.input);
      if (out instanceof Error) throw out;
      return { output: { $metadata: {}, ...(out as object) }, response: {} };
    },
    { step: 'initialize', name: 'fakeDynamo', priority: 'low' },
  );
  return { ddb, sent };
}

const cancelled = (codes: (string | { Code: string; Item?: Record<string, AttributeValue> })[]) =>
  new TransactionCanceledException({
    message: 'Transaction cancelled',
    $metadata: {},
    CancellationReasons: codes.map((c) => (typeof c === 'string' ? { Code: c } : c)),
  });

const NOW = Date.UTC(2025, 5, 12, 10, 31, 15);
function request(policy: TenantPolicy = {}, limits?: Limits): AdmissionRequest {
  return {
    requestId: 'req-1',
    startedAt: NOW,
    deadlineAt: NOW + 60_000,
    tenant: { tenantId: 'acme', region: 'eu-central-1', mode: 'managed', status: 'active', policy, createdAt: '', updatedAt: '', auditSeq: 0, auditHead: '' },
    token: { verifier: 'ab'.repeat(32), tokenId: 'tok1', tenantId: 'acme', role: 'invoke', createdAt: '', ...(limits ? { limits } : {}) },
    model: 'gpt-4o',
    maxTokens: 100,
    promptTokenEstimate: 10,
    targets: [{ provider: 'openai', kind: 'openai', baseUrl: 'https://api.openai.com', model: 'gpt-4o', secret: 'default' }],
  };
}

function governance(answer: Answer) {
  const { ddb, sent } = client(answer);
  const sleeps: number[] = [];
  const logs: string[] = [];
  const g = new DynamoGovernance(ddb, {
    table: 'counters',
    usageRecordsTable: 'usage',
    now: () => NOW,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    log: { info: (m) => logs.push(m), warn: (m) => logs.push(m), error: (m) => logs.push(m) },
  });
  return { g, sent, sleeps, logs };
}

async function denial(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('expected a denial');
}

test('the reservation is one transaction: reservation, both spend items, both rate windows', async () => {
  const { g, sent } = governance(() => ({}));
  await g.reserve(request({ monthlyBudgetUsd: 1, rpm: 10, tpm: 1000 }, { monthlyBudgetUsd: 0.5 }));
  expect(sent.map((s) => s.command)).toEqual(['TransactWriteItemsCommand']);
  const items = sent[0].input.TransactItems;
  expect(items).toHaveLength(5);
  expect(items[0].Put.Item.pk).toBe('RESV#acme');
  expect(items[0].Put.ConditionExpression).toBe('attribute_not_exists(pk)');
  expect(items[1].Update.Key.pk).toBe('SPEND#acme');
  // reserve = 40 × $2.50/M + 100 × $10/M = 1_100 µ$; budget $1 → ceiling 998_900
  expect(items[1].Update.ConditionExpression).toBe('(attribute_not_exists(#committedMicros) OR #committedMicros <= :committedMicrosCeiling)');
  expect(items[1].Update.ExpressionAttributeValues[':committedMicrosCeiling']).toBe(998_900);
  expect(items[2].Update.ExpressionAttributeValues[':committedMicrosCeiling']).toBe(498_900);
  expect(items[3].Update.ConditionExpression).toBe(
    '(attribute_not_exists(#requests) OR #requests <= :requestsCeiling) AND (attribute_not_exists(#tokens) OR #tokens <= :tokensCeiling)',
  );
  expect(items[3].Update.ExpressionAttributeValues[':tokensCeiling']).toBe(1000 - 110);
  expect(items[4].Update.ConditionExpression).toBeUndefined();
});

test('transaction conflicts (concurrent transactions on the same item) are retried with backoff', async () => {
  let calls = 0;
  const { g, sleeps } = governance(() => (++calls <= 2 ? cancelled(['None', 'TransactionConflict', 'None', 'None', 'None']) : {}));
  await expect(g.reserve(request({ monthlyBudgetUsd: 1 }))).resolves.toBeDefined();
  expect(calls).toBe(3);
  expect(sleeps).toHaveLength(2);
});

test('endless conflicts, or DynamoDB unreachable: a limited request fails closed with a 503', async () => {
  const endless = governance(() => cancelled(['TransactionConflict', 'None', 'None', 'None', 'None']));
  const e = await denial(endless.g.reserve(request({ rpm: 100 })));
  expect([e.status, e.code]).toEqual([503, 'governance_unavailable']);
  expect(endless.sleeps).toHaveLength(8);
  const down = governance(() => Object.assign(new Error('no such table'), { name: 'ResourceNotFoundException' }));
  expect((await denial(down.g.reserve(request({}, { monthlyBudgetUsd: 10 })))).code).toBe('governance_unavailable');
  expect(down.logs).toContain('governance: reservation failed');
});

test('no budget, RPM or TPM on tenant or token: no write before the provider, one unreserved settle after (even while DynamoDB was down)', async () => {
  let up = false;
  const { g, sent } = governance(() => (up ? {} : Object.assign(new Error('unreachable'), { name: 'TimeoutError' })));
  // Allowlists and caps are judged by check() on the read; they need no counter write.
  const a = await g.reserve(request({ allowedModels: ['gpt-4o'], maxTokens: 1000 }));
  expect(sent).toHaveLength(0);
  up = true;
  expect(await a.settle({ inputTokens: 10, outputTokens: 10 }, request().targets[0])).toEqual({ costUsd: 0.000125 });
  expect(sent.map((s) => s.command)).toEqual(['TransactWriteItemsCommand']);
  const items = sent[0].input.TransactItems;
  // Spend of tenant and token (the usage report and a budget set later count it), and the request in the rate windows.
  expect(items.map((i: any) => (i.Delete || i.Put ? 'reservation' : i.Update.UpdateExpression))).toEqual([
    'ADD #spentMicros :spentMicros, #committedMicros :committedMicros SET expiresAt = if_not_exists(expiresAt, :exp)',
    'ADD #spentMicros :spentMicros, #committedMicros :committedMicros SET expiresAt = if_not_exists(expiresAt, :exp), tokenId = :tid',
    'ADD #requests :requests, #tokens :tokens SET expiresAt = if_not_exists(expiresAt, :exp)',
    'ADD #requests :requests, #tokens :tokens SET expiresAt = if_not_exists(expiresAt, :exp)',
  ]);
  expect(items.map((i: any) => i.Update?.ConditionExpression)).toEqual([undefined, undefined, undefined, undefined]);
  const before = sent.length;
  await a.release();
  expect(sent.length).toBe(before);
  // A request that ends without settling (released) writes nothing at all.
  const b = await g.reserve(request());
  await b.release();
  expect(sent.length).toBe(before);
});

test('a limit on the token alone is enough to reserve', async () => {
  const { g, sent } = governance(() => ({}));
  await g.reserve(request({}, { rpm: 5 }));
  expect(sent.map((s) => s.command)).toEqual(['TransactWriteItemsCommand']);
  expect(sent[0].input.TransactItems[0].Put.Item.pk).toBe('RESV#acme');
});

test('a cancelled reservation names the limit that failed, budgets before rates', async () => {
  const spendItem = { Code: 'ConditionalCheckFailed', Item: { spentMicros: { N: '999000' }, reservedMicros: { N: '0' } } };
  const both = governance(() => cancelled(['None', 'None', spendItem, 'ConditionalCheckFailed', 'None']));
  const b = await denial(both.g.reserve(request({ rpm: 1 }, { monthlyBudgetUsd: 1 })));
  const toJuly = Math.ceil((Date.UTC(2025, 6, 1) - NOW) / 1000);
  expect([b.status, b.code, b.details]).toEqual([429, 'budget_exceeded', { limit_usd: 1, period: '2025-06', scope: 'token', spent_usd: 0.999, retry_after_seconds: toJuly }]);
  // Nothing is reserved, so no reclaim scan is worth a query.
  expect(both.sent.map((s) => s.command)).toEqual(['TransactWriteItemsCommand']);

  const tpm = governance(() => cancelled(['None', 'None', 'None', { Code: 'ConditionalCheckFailed', Item: { requests: { N: '3' }, tokens: { N: '950' } } }, 'None']));
  expect((await denial(tpm.g.reserve(request({ rpm: 100, tpm: 1000 })))).details).toMatchObject({ limit_tpm: 1000, scope: 'tenant' });
  const rpm = governance(() => cancelled(['None', 'None', 'None', 'None', { Code: 'ConditionalCheckFailed', Item: { requests: { N: '5' }, tokens: { N: '0' } } }]));
  expect((await denial(rpm.g.reserve(request({}, { rpm: 5, tpm: 1000 })))).details).toMatchObject({ limit_rpm: 5, scope: 'token' });
});

test('a budget denial with money reserved scans for expired reservations, at most once per tenant in a burst', async () => {
  const held = { Code: 'ConditionalCheckFailed', Item: { spentMicros: { N: '0' }, reservedMicros: { N: '999999' } } };
  const { g, sent } = governance((command) => (command === 'QueryCommand' ? { Items: [] } : cancelled(['None', held, 'None', 'None', 'None'])));
  const results = await Promise.all([1, 2, 3, 4].map(() => denial(g.reserve(request({ monthlyBudgetUsd: 1 })))));
  expect(results.map((r) => r.code)).toEqual(['budget_exceeded', 'budget_exceeded', 'budget_exceeded', 'budget_exceeded']);
  expect(results[0].message).toContain('reserved by requests in flight');
  expect(sent.filter((s) => s.command === 'QueryCommand')).toHaveLength(1);
});

test('a request dearer than the whole budget, or than TPM, is denied without any write', async () => {
  const { g, sent } = governance(() => ({}));
  expect((await denial(g.reserve(request({ monthlyBudgetUsd: 0.001 })))).code).toBe('budget_exceeded');
  expect((await denial(g.reserve(request({ tpm: 50 })))).details).toMatchObject({ limit_tpm: 50 });
  expect(sent).toEqual([]);
});

test('settle and release never throw: the answer is already on its way; failures are logged', async () => {
  let fail = false;
  const { g, logs } = governance(() => (fail ? Object.assign(new Error('throttled'), { name: 'InternalServerError' }) : {}));
  const a = await g.reserve(request({ monthlyBudgetUsd: 100 }));
  fail = true;
  await expect(a.settle({ inputTokens: 10, outputTokens: 10 }, request().targets[0])).resolves.toEqual({ costUsd: 0.000125 });
  expect(logs).toContain('governance: settle failed; the reservation is reclaimed at the recorded cost');
  fail = false;
  const b = await g.reserve(request({ monthlyBudgetUsd: 100 }));
  fail = true;
  await expect(b.release()).resolves.toBeUndefined();
  expect(logs).toContain('governance: release failed; the reservation will expire');
});

test('settle without usage counts charges the reservation; above it, the overrun is logged', async () => {
  const { g, logs, sent } = governance(() => ({}));
  const a = await g.reserve(request({ monthlyBudgetUsd: 100 }));
  expect(await a.settle(undefined, undefined)).toEqual({ costUsd: 0.0011 });
  const b = await g.reserve(request({ monthlyBudgetUsd: 100 }));
  expect(await b.settle({ inputTokens: 1000, outputTokens: 1000 }, request().targets[0])).toEqual({ costUsd: 0.0125 });
  expect(logs).toContain('governance: cost above its reservation');
  const settle = sent.at(-1)!.input.TransactItems;
  expect(settle[0].Delete.ConditionExpression).toBe('attribute_exists(pk)');
  expect(settle[1].Update.ExpressionAttributeValues[':committedMicros']).toBe(12_500 - 1_100);
  expect(settle[1].Update.ExpressionAttributeValues[':reservedMicros']).toBe(-1_100);
});

test("a settle's retries carry one idempotency token (a retry of a write that did commit is a no-op); another step of the request has its own", async () => {
  let failures = 1;
  const { g, sent } = governance((command) => (command === 'TransactWriteItemsCommand' && sent.length > 1 && failures-- > 0 ? Object.assign(new Error('timeout'), { name: 'TimeoutError' }) : {}));
  const a = await g.reserve(request({ monthlyBudgetUsd: 100 }));
  await a.settle({ inputTokens: 10, outputTokens: 10 }, request().targets[0]);
  const settles = sent.filter((s) => s.command === 'TransactWriteItemsCommand').slice(1);
  expect(settles).toHaveLength(2);
  const token = settles[0].input.ClientRequestToken;
  expect(typeof token).toBe('string');
  expect(token.length).toBeGreaterThan(20);
  expect(token.length).toBeLessThanOrEqual(36);
  expect(settles[1].input.ClientRequestToken).toBe(token);
  // A request that no limit governs settles unreserved: another step, another token.
  const { g: g2, sent: sent2 } = governance(() => ({}));
  await (await g2.reserve(request())).settle({ inputTokens: 10, outputTokens: 10 }, request().targets[0]);
  const unreserved = sent2.find((s) => s.command === 'TransactWriteItemsCommand')!.input.ClientRequestToken;
  expect(typeof unreserved).toBe('string');
  expect(unreserved).not.toBe(token);
});
