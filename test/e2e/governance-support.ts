/**
 * Helpers of the governance e2e tests: a router wired with DynamoGovernance on the harness's moto
 * cell and an injected clock, and readers of the counters table.
 */
import { GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoGovernance, DynamoGovernanceOptions } from '../../lambda/adapters/dynamo-governance';
import { DynamoRouterStore } from '../../lambda/adapters/dynamo-router-store';
import { requestCounterKeys, reservationPk } from '../../lambda/core/governance/keys';
import type { HttpRequest } from '../../lambda/core/http';
import { MemorySink } from '../../lambda/core/router/response-sink';
import type { AdmissionRequest } from '../../lambda/core/router/governance';
import type { RouterDeps } from '../../lambda/core/router/router-app';
import type { Target } from '../../lambda/core/routing/types';
import type { UsageRecord } from '../../lambda/core/router/usage-record';
import { createTables } from '../../local/provision-cell';
import type { RouterHarness } from '../support/router-harness';

export const START = Date.UTC(2025, 5, 12, 10, 0, 5);

const serialized = new WeakSet<object>();

/**
 * Makes the harness's DynamoDB client send one request at a time. moto_server is threaded and
 * its DynamoDB backend is not: under concurrent calls a transaction's conditions and writes
 * interleave with other requests (we saw one reservation more admitted than the budget holds,
 * and 500s from moto deep-copying a table another thread was changing). DynamoDB applies every
 * request, and every TransactWriteItems, atomically; one request at a time restores exactly that,
 * while the requests of the code under test still interleave freely between their calls.
 */
export function serializeDynamoDb(h: RouterHarness): void {
  const client = h.cell.clients.ddb;
  if (serialized.has(client)) return;
  serialized.add(client);
  let tail: Promise<unknown> = Promise.resolve();
  client.middlewareStack.add(
    (next) => (args) => {
      const run = tail.then(() => next(args));
      tail = run.catch(() => undefined);
      return run;
    },
    { step: 'initialize', name: 'serializeForMoto', priority: 'low' },
  );
}

/** A settable clock shared by the router and governance. */
export class TestClock {
  constructor(public t = START) {}
  readonly now = () => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

let tables = 0;

/** A counters table of its own (same schema as the cell's), so a test starts from no counters. */
export async function freshCountersTable(h: RouterHarness): Promise<string> {
  return (await createTables(h.cell.clients.ddb, `gov${process.pid}x${++tables}`)).counters;
}

export function governanceRouter(
  h: RouterHarness,
  opts: { clock?: TestClock; table?: string; governance?: Partial<DynamoGovernanceOptions>; router?: Partial<RouterDeps> } = {},
) {
  const clock = opts.clock ?? new TestClock();
  const logs: string[] = [];
  const governance = new DynamoGovernance(h.cell.clients.ddb, {
    table: opts.table ?? h.cell.config.tables.counters,
    usageRecordsTable: h.cell.config.tables.usage,
    now: clock.now,
    log: { info: (m, f) => logs.push(JSON.stringify({ m, ...f })), warn: (m, f) => logs.push(JSON.stringify({ m, ...f })), error: (m, f) => logs.push(JSON.stringify({ m, ...f })) },
    ...opts.governance,
  });
  // Governance reads its counters through the router's one read: same counters table for both.
  const store = opts.table ? { store: new DynamoRouterStore(h.cell.clients.ddb, { ...h.cell.config.tables, counters: opts.table }) } : {};
  const router = h.makeRouter({ governance, now: clock.now, ...store, ...opts.router });
  const parse = (body: string) => {
    try {
      return JSON.parse(body);
    } catch {
      return body;
    }
  };
  const call = async (req: Partial<HttpRequest> & { path: string }, token?: string): Promise<{ status?: number; sink: MemorySink; record?: UsageRecord; json: any }> => {
    const sink = new MemorySink();
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(req.headers as Record<string, string>) };
    if (token) headers.authorization = `Bearer ${token}`;
    const record = await router({ method: req.method ?? 'POST', path: req.path, headers, body: req.body, sourceIp: req.sourceIp ?? '203.0.113.7' }, sink);
    return { status: sink.status, sink, record, json: parse(sink.body) };
  };
  return { clock, governance, router, call, logs };
}

export const chat = (model: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model, messages: [{ role: 'user', content: 'hello there' }], ...extra });

/** The verifier of a token, as the tokens table holds it. */
export async function verifierOf(h: RouterHarness, tenantId: string, tokenId?: string): Promise<string> {
  const tokens = await h.cell.store.listTokens(tenantId);
  const t = tokenId ? tokens.find((x) => x.tokenId === tokenId) : tokens.find((x) => x.role === 'invoke');
  if (!t) throw new Error('no such token');
  return t.verifier;
}

export async function counterItem(h: RouterHarness, pk: string, sk: string, table = h.cell.config.tables.counters): Promise<Record<string, any> | undefined> {
  const out = await h.cell.clients.doc.send(new GetCommand({ TableName: table, Key: { pk, sk }, ConsistentRead: true }));
  return out.Item;
}

/** A usage record (or any item) of the usage table. */
export async function usageItem(h: RouterHarness, pk: string, sk: string): Promise<Record<string, any> | undefined> {
  return counterItem(h, pk, sk, h.cell.config.tables.usage);
}

/** Spend, rate and reservation state of a tenant and one token at `now`. */
export async function counters(h: RouterHarness, tenantId: string, verifier: string, now: number, table = h.cell.config.tables.counters) {
  const k = requestCounterKeys(tenantId, verifier, now);
  const [tenantSpend, tokenSpend, tenantRate, tokenRate] = await Promise.all(
    [k.tenantSpend, k.tokenSpend, k.tenantRate, k.tokenRate].map((key) => counterItem(h, key.pk, key.sk, table)),
  );
  const resv = await h.cell.clients.doc.send(
    new QueryCommand({ TableName: table, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': reservationPk(tenantId) }, ConsistentRead: true }),
  );
  return { tenantSpend, tokenSpend, tenantRate, tokenRate, reservations: resv.Items ?? [] };
}

/** What the router would hand governance for a chat request, built by hand (no router, no provider). */
export async function admissionRequest(
  h: RouterHarness,
  o: { tenantId: string; requestId: string; startedAt: number; body: string; model?: string; maxTokens?: number },
): Promise<AdmissionRequest> {
  const tenant = (await h.cell.store.getTenant(o.tenantId))!;
  const token = (await h.cell.store.listTokens(o.tenantId)).find((t) => t.role === 'invoke')!;
  const model = o.model ?? 'gpt-4o';
  const target: Target = { provider: 'openai', kind: 'openai', baseUrl: h.fakes.openai.baseUrl, model, secret: 'default' };
  return {
    requestId: o.requestId,
    startedAt: o.startedAt,
    deadlineAt: o.startedAt + h.cell.config.requestDeadlineMs,
    tenant,
    token,
    model,
    sourceIp: '203.0.113.7',
    ...(o.maxTokens !== undefined ? { maxTokens: o.maxTokens } : {}),
    promptTokenEstimate: Math.ceil(Buffer.byteLength(o.body) / 4),
    targets: [target],
  };
}

/** `n` such requests (ids `<prefix><i>`), reading the tenant and token once. */
export async function admissionRequests(
  h: RouterHarness,
  n: number,
  o: { tenantId: string; prefix: string; startedAt: number; body: string; model?: string; maxTokens?: number },
): Promise<AdmissionRequest[]> {
  const first = await admissionRequest(h, { ...o, requestId: `${o.prefix}0` });
  return Array.from({ length: n }, (_, i) => ({ ...first, requestId: `${o.prefix}${i}` }));
}
