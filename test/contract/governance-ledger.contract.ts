/**
 * GovernanceLedger contract: all-or-nothing writes, ceilings judged on the item before the write,
 * reservation conditions, expired-reservation scans, malformed rows, and, through the shared core
 * (LedgerGovernance), budget races: concurrent reservations never overspend.
 */
import { LedgerGovernance } from '../../lambda/core/governance/ledger-governance';
import type { ReservationRecord } from '../../lambda/core/governance/ledger';
import { ApiError } from '../../lambda/core/http';
import type { AdmissionRequest } from '../../lambda/core/router/governance';
import { BackendFactory, ContractBackend, freshTenantId } from './backend';

const reservation = (tenantId: string, sk: string, reclaimAfter: number): ReservationRecord => ({
  key: { pk: `RESV#${tenantId}`, sk },
  tenantId,
  tokenId: 'tok1',
  tokenKey: 'kabc',
  period: '2026-01',
  window: '2026-01-01T00:00Z',
  amountMicros: 100,
  tpmTokens: 10,
  model: 'gpt-4o',
  createdAt: '2026-01-01T00:00:00.000Z',
  reclaimAfter,
  expiresAt: reclaimAfter + 1000,
});

const NOW = Date.UTC(2026, 0, 12, 10, 31, 15);
function admission(tenantId: string, requestId: string, budgetUsd: number): AdmissionRequest {
  return {
    requestId,
    startedAt: NOW,
    deadlineAt: NOW + 60_000,
    tenant: { tenantId, region: 'eu-central-1', mode: 'managed', status: 'active', policy: { monthlyBudgetUsd: budgetUsd }, createdAt: '', updatedAt: '', auditSeq: 0, auditHead: '' },
    token: { verifier: 'ab'.repeat(32), tokenId: 'tok1', tenantId, role: 'invoke', createdAt: '' },
    model: 'gpt-4o',
    maxTokens: 100,
    promptTokenEstimate: 10,
    targets: [{ provider: 'openai', kind: 'openai', baseUrl: 'https://api.openai.com', model: 'gpt-4o', secret: 'default' }],
  };
}

export function governanceLedgerContract(name: string, factory: BackendFactory): void {
  describe(`GovernanceLedger contract: ${name}`, () => {
    let b: ContractBackend;
    beforeAll(() => {
      b = factory();
    });
    const read = async (pk: string, sk: string) => (await b.store.getCounterItems([{ pk, sk }])).get(`${pk}|${sk}`);

    test('adds create fields at 0 and accumulate; expiry is set once; the token id is recorded', async () => {
      const pk = `SPEND#${freshTenantId('lg')}`;
      expect(await b.ledger.write({ counters: [{ key: { pk, sk: 'm' }, add: { spentMicros: 0, reservedMicros: 5, committedMicros: 5 }, expiresAt: 111, tokenId: 't1' }] })).toEqual({ ok: true });
      expect(await b.ledger.write({ counters: [{ key: { pk, sk: 'm' }, add: { spentMicros: 4, reservedMicros: -5, committedMicros: -1 }, expiresAt: 222 }] })).toEqual({ ok: true });
      expect(await read(pk, 'm')).toMatchObject({ spentMicros: 4, reservedMicros: 0, committedMicros: 4, expiresAt: 111, tokenId: 't1' });
    });

    test('a failed ceiling refuses the whole write, names every failed update with the item as it was, and changes nothing', async () => {
      const t = freshTenantId('lg');
      const a = { pk: `SPEND#${t}`, sk: 'm' };
      const r = { pk: `RATE#${t}`, sk: 'w' };
      await b.ledger.write({ counters: [{ key: a, add: { committedMicros: 90, spentMicros: 90 } }, { key: r, add: { requests: 3, tokens: 30 } }] });
      const result = await b.ledger.write({
        reservation: { put: reservation(t, 'req1', 1) },
        counters: [
          { key: a, add: { committedMicros: 20 }, ceilings: { committedMicros: 80 } },
          { key: r, add: { requests: 1 }, ceilings: { requests: 2, tokens: 1000 } },
          { key: { pk: `RATE#${t}#k`, sk: 'w' }, add: { requests: 1 }, ceilings: { requests: 0 } },
        ],
      });
      expect(result).toEqual({
        ok: false,
        reservationFailed: false,
        failed: [
          { index: 0, item: { committedMicros: 90, spentMicros: 90 } },
          { index: 1, item: { requests: 3, tokens: 30 } },
        ],
      });
      expect(await read(a.pk, a.sk)).toMatchObject({ committedMicros: 90 });
      expect(await read(r.pk, r.sk)).toMatchObject({ requests: 3 });
      expect(await read(`RATE#${t}#k`, 'w')).toBeUndefined();
      expect(await b.raw.reservations(t)).toEqual([]);
    });

    test('a ceiling on a field that does not exist yet passes (absent is not over the limit)', async () => {
      const pk = `RATE#${freshTenantId('lg')}`;
      expect(await b.ledger.write({ counters: [{ key: { pk, sk: 'w' }, add: { requests: 1 }, ceilings: { requests: 0 } }] })).toEqual({ ok: true });
      expect(await b.ledger.write({ counters: [{ key: { pk, sk: 'w' }, add: { requests: 1 }, ceilings: { requests: 0 } }] })).toMatchObject({ ok: false, failed: [{ index: 0 }] });
    });

    test('reservations: a second put of one id fails; delete needs it there (and, to reclaim, expired)', async () => {
      const t = freshTenantId('lg');
      expect(await b.ledger.write({ reservation: { put: reservation(t, 'r1', 500) }, counters: [] })).toEqual({ ok: true });
      expect(await b.ledger.write({ reservation: { put: reservation(t, 'r1', 500) }, counters: [{ key: { pk: `SPEND#${t}`, sk: 'm' }, add: { spentMicros: 1 } }] })).toEqual({
        ok: false,
        reservationFailed: true,
        failed: [],
      });
      expect(await read(`SPEND#${t}`, 'm')).toBeUndefined();
      expect(await b.ledger.write({ reservation: { delete: { pk: `RESV#${t}`, sk: 'r1' }, reclaimableAt: 500 }, counters: [] })).toMatchObject({ ok: false, reservationFailed: true });
      expect(await b.ledger.write({ reservation: { delete: { pk: `RESV#${t}`, sk: 'r1' }, reclaimableAt: 501 }, counters: [] })).toEqual({ ok: true });
      expect(await b.ledger.write({ reservation: { delete: { pk: `RESV#${t}`, sk: 'r1' } }, counters: [] })).toMatchObject({ ok: false, reservationFailed: true });
      expect(await b.raw.reservations(t)).toEqual([]);
    });

    test('expiredReservations: only the tenant’s, only those past reclaimAfter, at most the limit; malformed rows skipped', async () => {
      const t = freshTenantId('lg');
      for (const [sk, at] of [['a', 100], ['b', 200], ['c', 300], ['d', 900]] as const) await b.ledger.write({ reservation: { put: reservation(t, sk, at) }, counters: [] });
      await b.ledger.write({ reservation: { put: reservation(freshTenantId('other'), 'x', 1) }, counters: [] });
      await b.raw.putReservationRow(`RESV#${t}`, 'bad', { reclaimAfter: 50, period: 7 });
      const found = await b.ledger.expiredReservations(t, 301, 10);
      expect(found.map((r) => r.key.sk).sort()).toEqual(['a', 'b', 'c']);
      expect(found.find((r) => r.key.sk === 'a')).toEqual(reservation(t, 'a', 100));
      expect(await b.ledger.expiredReservations(t, 301, 2)).toHaveLength(2);
      expect(await b.ledger.expiredReservations(t, 100, 10)).toEqual([]);
    });

    test('budget race: 24 concurrent reservations against room for 9 admit exactly 9; settle and release keep committed = spent + reserved', async () => {
      const t = freshTenantId('race');
      const g = new LedgerGovernance(b.ledger, { now: () => NOW });
      // Each reserves 1_100 µ$ (40 prompt tokens at $2.50/M + 100 output at $10/M); $0.01 holds 9.
      const outcomes = await Promise.allSettled(Array.from({ length: 24 }, (_, i) => g.reserve(admission(t, `r${i}`, 0.01))));
      const admitted = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
      expect(admitted).toHaveLength(9);
      for (const o of outcomes) if (o.status === 'rejected') expect(o.reason).toMatchObject({ code: 'budget_exceeded', status: 429 } as Partial<ApiError>);
      const spendPk = `SPEND#${t}`;
      expect(await read(spendPk, '2026-01')).toMatchObject({ reservedMicros: 9_900, committedMicros: 9_900, spentMicros: 0 });
      expect((await b.raw.reservations(t)).length).toBe(9);
      await admitted[0].settle({ inputTokens: 10, outputTokens: 10 }, admission(t, 'x', 1).targets[0]);
      await admitted[1].release();
      const item = (await read(spendPk, '2026-01'))!;
      expect(item).toMatchObject({ spentMicros: 125, reservedMicros: 7 * 1_100 });
      expect(item.committedMicros).toBe((item.spentMicros as number) + (item.reservedMicros as number));
      expect((await b.raw.reservations(t)).length).toBe(7);
      // Settling twice is settling once.
      await admitted[0].settle({ inputTokens: 10, outputTokens: 10 }, admission(t, 'x', 1).targets[0]);
      expect((await read(spendPk, '2026-01'))!.spentMicros).toBe(125);
    });

    test("recordedCostMicros: the cost on the reservation's usage record, 0 without one", async () => {
      const t = freshTenantId('cost');
      const r = reservation(t, 'req-cost', 100);
      expect(await b.ledger.recordedCostMicros(r)).toBe(0);
      await b.routerStore.putUsage({
        requestId: 'req-cost',
        tenantId: t,
        tokenId: 'tok1',
        route: 'chat',
        model: 'gpt-4o',
        stream: false,
        status: 200,
        decision: 'ok',
        costUsd: 0.000321,
        latencyMs: 1,
        fallbackChain: [],
        at: r.createdAt,
      });
      expect(await b.ledger.recordedCostMicros(r)).toBe(321);
      expect(await b.ledger.recordedCostMicros({ ...r, key: { ...r.key, sk: 'other' } })).toBe(0);
    });

    test('reservations left behind are reclaimed when a budget denial would otherwise happen', async () => {
      const t = freshTenantId('reclaim');
      let now = NOW;
      const g = new LedgerGovernance(b.ledger, { now: () => now });
      const held = await Promise.all(Array.from({ length: 9 }, (_, i) => g.reserve(admission(t, `old${i}`, 0.01))));
      expect(held).toHaveLength(9);
      await expect(g.reserve(admission(t, 'late', 0.01))).rejects.toMatchObject({ code: 'budget_exceeded' });
      // Past every old request's deadline and margin: the next request gets the money back.
      now = NOW + 60_000 + 120_000 + 10_000;
      const late = { ...admission(t, 'late2', 0.01), startedAt: now, deadlineAt: now + 60_000 };
      await expect(g.reserve(late)).resolves.toBeDefined();
      expect(await b.raw.reservations(t)).toEqual(['late2']);
      expect(await read(`SPEND#${t}`, '2026-01')).toMatchObject({ reservedMicros: 1_100, committedMicros: 1_100 });
    });
  });
}
