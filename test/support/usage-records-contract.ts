/**
 * Contract of the usage-records port (UsageRecordsPort): every adapter answers the same queries
 * the same way. Run against each adapter with a writer that stores records as the router does.
 */
import type { UsageRecord } from '../../lambda/core/router/usage-record';
import { UsageQuery, UsageRecordsPort } from '../../lambda/core/usage/usage-query';

export interface UsageRecordsSubject {
  readonly port: UsageRecordsPort;
  /** Stores a record the way the router's store does. */
  put(record: UsageRecord): Promise<void>;
}

export function usageRecord(tenantId: string, i: number, over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    requestId: `req-${String(i).padStart(4, '0')}-0000-4000-8000-000000000000`,
    tenantId,
    tokenId: i % 2 === 0 ? 'tk_even' : 'tk_odd',
    route: 'chat',
    model: i % 3 === 0 ? 'claude-sonnet-4-5' : 'gpt-4o-mini',
    provider: i % 3 === 0 ? 'anthropic' : 'openai',
    secret: 'default',
    stream: i % 2 === 0,
    status: i % 5 === 4 ? 429 : 200,
    decision: i % 5 === 4 ? 'denied:budget_exceeded' : i % 7 === 6 ? 'upstream_error' : 'ok',
    inputTokens: 10 + i,
    outputTokens: 5,
    costUsd: 0.0001 * i,
    latencyMs: 100 + i,
    timeToFirstTokenMs: 20 + i,
    fallbackChain: [{ provider: 'openai', model: 'gpt-4o-mini', outcome: 'ok', status: 200, latencyMs: 90 }],
    at: new Date(Date.UTC(2026, 2, 1, 0, 0, 0) + i * 60_000).toISOString(),
    ...over,
  };
}

export function describeUsageRecordsContract(name: string, setup: () => Promise<UsageRecordsSubject>): void {
  describe(`UsageRecordsPort contract: ${name}`, () => {
    let s: UsageRecordsSubject;
    const tenant = `usage-${name.replace(/[^a-z]/gi, '').toLowerCase()}`;
    const other = `${tenant}-other`;
    const written: UsageRecord[] = [];
    const q = (over: Partial<UsageQuery> = {}): UsageQuery => ({
      tenantId: tenant,
      from: '2026-03-01T00:00:00.000Z',
      to: '2026-04-01T00:00:00.000Z',
      limit: 100,
      ...over,
    });
    const ids = (rs: readonly UsageRecord[]) => rs.map((r) => r.requestId);

    beforeAll(async () => {
      s = await setup();
      for (let i = 0; i < 30; i++) {
        const r = usageRecord(tenant, i);
        written.push(r);
        await s.put(r);
        await s.put(usageRecord(other, i, { tokenId: 'tk_even' }));
      }
    });

    test('returns the period oldest first, exactly as written (no storage attributes)', async () => {
      const out = await s.port.queryUsage(q());
      expect(out.records).toEqual(written);
      expect(out.lastKey).toBeUndefined();
    });

    test('from is inclusive and to is exclusive, to the millisecond', async () => {
      const out = await s.port.queryUsage(q({ from: written[3].at, to: written[6].at }));
      expect(ids(out.records)).toEqual(ids(written.slice(3, 6)));
      const none = await s.port.queryUsage(q({ from: '2026-03-02T00:00:00.000Z', to: '2026-03-03T00:00:00.000Z' }));
      expect(none.records).toEqual([]);
    });

    test('filters by token, model and outcome, alone and together', async () => {
      const byToken = await s.port.queryUsage(q({ tokenId: 'tk_odd' }));
      expect(ids(byToken.records)).toEqual(ids(written.filter((r) => r.tokenId === 'tk_odd')));
      const byModel = await s.port.queryUsage(q({ model: 'claude-sonnet-4-5' }));
      expect(ids(byModel.records)).toEqual(ids(written.filter((r) => r.model === 'claude-sonnet-4-5')));
      const denied = await s.port.queryUsage(q({ outcome: 'denied' }));
      expect(denied.records.map((r) => r.decision)).toEqual(written.filter((r) => r.decision.startsWith('denied')).map((r) => r.decision));
      expect(denied.records.length).toBe(6);
      const errors = await s.port.queryUsage(q({ outcome: 'error' }));
      expect(ids(errors.records)).toEqual(ids(written.filter((r) => r.decision === 'upstream_error')));
      const ok = await s.port.queryUsage(q({ outcome: 'ok' }));
      expect(ok.records.length + denied.records.length + errors.records.length).toBe(written.length);
      const both = await s.port.queryUsage(q({ tokenId: 'tk_even', model: 'gpt-4o-mini', outcome: 'ok' }));
      expect(ids(both.records)).toEqual(ids(written.filter((r) => r.tokenId === 'tk_even' && r.model === 'gpt-4o-mini' && r.decision === 'ok')));
    });

    test('pages of `limit` records cover the period exactly once, in order, with and without filters', async () => {
      for (const filter of [{}, { tokenId: 'tk_odd' }, { outcome: 'denied' as const }]) {
        const seen: UsageRecord[] = [];
        let after: string | undefined;
        for (let page = 0; page < 40; page++) {
          const out = await s.port.queryUsage(q({ ...filter, limit: 4, ...(after ? { after } : {}) }));
          expect(out.records.length).toBeLessThanOrEqual(4);
          seen.push(...out.records);
          after = out.lastKey;
          if (!after) break;
        }
        expect(after).toBeUndefined();
        const all = await s.port.queryUsage(q(filter));
        expect(ids(seen)).toEqual(ids(all.records));
      }
    });

    test("a tenant never sees another tenant's records, whatever cursor it sends", async () => {
      const mine = await s.port.queryUsage(q({ limit: 5 }));
      const theirs = await s.port.queryUsage(q({ tenantId: other, after: mine.lastKey, limit: 100 }));
      expect(theirs.records.every((r) => r.tenantId === other)).toBe(true);
      const all = await s.port.queryUsage(q({ tenantId: 'usage-nobody' }));
      expect(all.records).toEqual([]);
    });
  });
}
