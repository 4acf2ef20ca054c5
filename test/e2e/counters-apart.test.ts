/**
 * Governance counters live apart from the usage records (issue 12.4, DESIGN section 7): on the
 * deployed adapters every transaction of a governed request (reserve, settle, release) touches
 * the counters table only, and the usage table only ever receives one PutItem per request. So no
 * transaction's cost grows with usage history, however many records the usage table holds.
 */
import { DynamoGovernance } from '../../lambda/adapters/dynamo-governance';
import { MemorySink } from '../../lambda/core/router/response-sink';
import { RouterHarness, startRouterHarness } from '../support/router-harness';
import { chat, serializeDynamoDb } from './governance-support';

let h: RouterHarness;
beforeAll(async () => {
  h = await startRouterHarness();
  serializeDynamoDb(h);
}, 60_000);
afterAll(() => h?.close());

test('a governed request: transactions on the counters table only; the usage table gets one PutItem and nothing else', async () => {
  const { invokeToken } = await h.tenant('apart-co', { policy: { monthlyBudgetUsd: 5, rpm: 100 } });
  const calls: { command: string; tables: string[] }[] = [];
  const ddb = h.cell.clients.ddb;
  ddb.middlewareStack.add(
    (next, context) => (args) => {
      const input = args.input as { TableName?: string; TransactItems?: Record<string, { TableName: string }>[]; RequestItems?: Record<string, unknown> };
      const tables = input.TransactItems
        ? input.TransactItems.map((item) => Object.values(item)[0].TableName)
        : input.RequestItems
          ? Object.keys(input.RequestItems)
          : input.TableName
            ? [input.TableName]
            : [];
      calls.push({ command: String(context.commandName), tables });
      return next(args);
    },
    { step: 'initialize', name: 'recordTables' },
  );
  const t = h.cell.config.tables;
  const router = h.makeRouter({ governance: new DynamoGovernance(ddb, { table: t.counters, usageRecordsTable: t.usage }) });
  const body = chat('gpt-4o-mini', { max_tokens: 5 });
  for (let i = 0; i < 3; i++) {
    const sink = new MemorySink();
    await router({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', authorization: `Bearer ${invokeToken}` }, body }, sink);
    expect(sink.status).toBe(200);
  }
  const transactions = calls.filter((c) => c.command === 'TransactWriteItemsCommand');
  // Reserve and settle for each request.
  expect(transactions).toHaveLength(6);
  for (const tx of transactions) expect(new Set(tx.tables)).toEqual(new Set([t.counters]));
  const onUsage = calls.filter((c) => c.tables.includes(t.usage));
  expect(onUsage.map((c) => c.command)).toEqual(['PutItemCommand', 'PutItemCommand', 'PutItemCommand']);
  // The one read of each request names the counters table, never the usage table.
  const reads = calls.filter((c) => c.command === 'BatchGetItemCommand');
  expect(reads).toHaveLength(3);
  for (const read of reads) {
    expect(read.tables).toContain(t.counters);
    expect(read.tables).not.toContain(t.usage);
  }
});
