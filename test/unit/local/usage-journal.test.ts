/**
 * The usage records' journal (local/embedded/usage-journal.ts, database.ts): a record is on disk
 * when putUsage returns, in the state a kill -9 leaves (a copy of the state directory taken at
 * that moment); every reader of the usage table sees it at once; a failed journal write or COMMIT
 * loses neither the record nor the spend; a torn tail is ignored; a clean stop empties the journal.
 */
import { appendFileSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { Database } from 'node-sqlite3-wasm';
import type { UsageRecord } from '../../../lambda/core/router/usage-record';
import type { ReservationRecord } from '../../../lambda/core/governance/ledger';
import { DATABASE_FILE, EmbeddedDatabase } from '../../../local/embedded/database';
import { EmbeddedGovernanceLedger } from '../../../local/embedded/embedded-governance-ledger';
import { EmbeddedRouterStore } from '../../../local/embedded/embedded-router-store';
import { EmbeddedUsageRecords } from '../../../local/embedded/embedded-usage-records';
import { entriesOf, frameOf, JournaledLedgerWrite, JournaledReservation, ledgerFrameOf, reservationFrameOf, rowsOf, USAGE_JOURNAL_FILE, UsageRow } from '../../../local/embedded/usage-journal';

const dirs: string[] = [];
const fresh = () => {
  const d = mkdtempSync(join(tmpdir(), 'sr-journal-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** What kill -9 leaves: the files as they are now (every completed write is in them). */
function snapshot(dir: string): string {
  const to = fresh();
  for (const f of readdirSync(dir)) if (f !== 'gateway.lock' && !f.endsWith('.lock')) copyFileSync(join(dir, f), join(to, f));
  return to;
}

const record = (i: number, extra: Partial<UsageRecord> = {}): UsageRecord =>
  ({ requestId: `r${i}`, tenantId: 't', tokenId: 'k', route: 'chat', model: 'm', stream: false, status: 200, decision: 'ok', at: `2026-12-01T00:00:${String(i % 60).padStart(2, '0')}.${String(i).padStart(3, '0')}Z`, costUsd: 0.00003, latencyMs: 1, fallbackChain: [], ...extra }) as unknown as UsageRecord;
const usageIds = (db: EmbeddedDatabase) => db.all('SELECT request_id FROM usage ORDER BY request_id').map((r) => String(r.request_id));
const journalBytes = (dir: string) => statSync(join(dir, USAGE_JOURNAL_FILE)).size;

/** Ledger writes and views of one tenant's spend counter (SPEND#t) and reservations (RESV#t). */
const spend = { pk: 'SPEND#t', sk: '2026-12' };
const reservationOf = (i: number, amountMicros = 50) =>
  ({ key: { pk: 'RESV#t', sk: `r${i}` }, tenantId: 't', tokenId: 'k', tokenKey: 'tk', period: '2026-12', window: 'w', amountMicros, tpmTokens: 1, model: 'm', createdAt: 'c', reclaimAfter: 1, expiresAt: 2 }) as ReservationRecord;
const reserve = (ledger: EmbeddedGovernanceLedger, i: number, amount = 50, ceiling?: number) =>
  ledger.write({ reservation: { put: reservationOf(i, amount) }, counters: [{ key: spend, add: { reservedMicros: amount, committedMicros: amount }, ...(ceiling !== undefined ? { ceilings: { committedMicros: ceiling } } : {}) }] });
const settle = (ledger: EmbeddedGovernanceLedger, i: number, reserved: number, cost: number) =>
  ledger.write({ reservation: { delete: { pk: 'RESV#t', sk: `r${i}` } }, counters: [{ key: spend, add: { reservedMicros: -reserved, committedMicros: cost - reserved, spentMicros: cost } }] });
const release = (ledger: EmbeddedGovernanceLedger, i: number, reserved: number) =>
  ledger.write({ reservation: { delete: { pk: 'RESV#t', sk: `r${i}` } }, counters: [{ key: spend, add: { reservedMicros: -reserved, committedMicros: -reserved } }] });
const state = (d: EmbeddedDatabase) => ({
  counters: d.all('SELECT coalesce(spentMicros, 0) AS spentMicros, coalesce(reservedMicros, 0) AS reservedMicros, coalesce(committedMicros, 0) AS committedMicros FROM counters WHERE body IS NULL'),
  reservations: d.all('SELECT sk FROM counters WHERE body IS NOT NULL ORDER BY sk').map((r) => r.sk),
});
const turn = () => new Promise((r) => setImmediate(r));
/** The reclaim's write (governance's reclaim of a reservation left behind): a timed condition, never journaled. */
const reclaim = (ledger: EmbeddedGovernanceLedger, i: number, reserved: number) =>
  ledger.write({ reservation: { delete: { pk: 'RESV#t', sk: `r${i}` }, reclaimableAt: 2 }, counters: [{ key: spend, add: { reservedMicros: -reserved, committedMicros: -reserved } }] });
/** The spend counter's values (0 when it has no row yet) and the reservations held. */
const totals = (d: EmbeddedDatabase) => {
  const row = d.one("SELECT coalesce(spentMicros, 0) AS spent, coalesce(reservedMicros, 0) AS reserved, coalesce(committedMicros, 0) AS committed FROM counters WHERE pk = 'SPEND#t'");
  return { spent: Number(row?.spent ?? 0), reserved: Number(row?.reserved ?? 0), committed: Number(row?.committed ?? 0), reservations: d.all('SELECT sk FROM counters WHERE body IS NOT NULL ORDER BY sk').map((r) => r.sk) };
};

/** Opens the state directory `dir`, checks it, closes it. */
function opened(dir: string, check: (after: EmbeddedDatabase) => void): void {
  const after = new EmbeddedDatabase({ dir });
  try {
    check(after);
  } finally {
    after.close();
  }
}

/** Opens what a kill -9 of the store on `dir` would leave now (a snapshot), checks it, closes it. */
function afterKill(dir: string, check: (after: EmbeddedDatabase) => void): void {
  opened(snapshot(dir), check);
}

/** Opens each snapshot (what a kill -9 left at that moment) and checks it holds what was acknowledged by then. */
function expectSnapshots<T>(checks: readonly { dir: string; expected: T }[], view: (d: EmbeddedDatabase) => T): void {
  for (const c of checks) opened(c.dir, (after) => expect(view(after)).toEqual(c.expected));
}

describe('frames', () => {
  test('any row comes back as it was written; a frame cut short or with a changed byte ends the journal there', () => {
    const row = fc.tuple(fc.string(), fc.string(), fc.string(), fc.string(), fc.integer({ min: 0, max: 2 ** 40 }), fc.uint8Array({ maxLength: 300 }));
    fc.assert(
      fc.property(fc.array(row, { minLength: 1, maxLength: 5 }), fc.nat(), (rows, cut) => {
        const frames = rows.map((r) => frameOf(r as unknown as UsageRow));
        const bytes = Buffer.concat(frames);
        expect(rowsOf(bytes).map((r) => [r[0], r[1], r[2], r[3], r[4], Array.from(r[5])])).toEqual(rows.map((r) => [r[0], r[1], r[2], r[3], r[4], Array.from(r[5])]));
        // Cut anywhere inside the last frame: the others are kept.
        const lastStart = bytes.length - frames[frames.length - 1].length;
        const at = lastStart + (cut % frames[frames.length - 1].length);
        expect(rowsOf(bytes.subarray(0, at))).toHaveLength(rows.length - 1);
        // One byte changed in the last frame: it is refused.
        const damaged = Buffer.from(bytes);
        damaged[at] ^= 0x01;
        expect(rowsOf(damaged)).toHaveLength(rows.length - 1);
      }),
      { numRuns: 200 },
    );
  });
});

describe('ledger frames', () => {
  const key = fc.record({ pk: fc.string(), sk: fc.string() });
  const amount = fc.integer({ min: -(2 ** 40), max: 2 ** 40 });
  const write = fc.record({
    reservation: key,
    counters: fc.array(
      fc.record(
        { key, add: fc.record({ spentMicros: amount, reservedMicros: amount, committedMicros: amount, requests: amount, tokens: amount }, { requiredKeys: [] }), expiresAt: fc.integer({ min: 0, max: 2 ** 40 }), tokenId: fc.string() },
        { requiredKeys: ['key', 'add'] },
      ),
      { maxLength: 4 },
    ),
  });

  test('a ledger write comes back as it was written, between usage rows; a changed byte ends the journal there', () => {
    fc.assert(
      fc.property(write, fc.nat(), (w, flip) => {
        const row: UsageRow = ['t', 's', 'a', 'r', 1, Buffer.from('{}')];
        const ledger = ledgerFrameOf(w as JournaledLedgerWrite);
        const bytes = Buffer.concat([frameOf(row), ledger, frameOf(row)]);
        const entries = entriesOf(bytes);
        expect(entries).toHaveLength(3);
        expect(entries[1]).toEqual({ ledger: JSON.parse(JSON.stringify(w)) });
        expect(rowsOf(bytes)).toHaveLength(2);
        const damaged = Buffer.from(bytes);
        damaged[frameOf(row).length + (flip % ledger.length)] ^= 0x04;
        expect(entriesOf(damaged)).toHaveLength(1);
      }),
      { numRuns: 200 },
    );
  });

  test('a frame that is not exactly what the ledger writes (a fraction, an unknown field, a missing key) ends the journal: it is never applied', () => {
    const good = { reservation: { pk: 'RESV#t', sk: 'r1' }, counters: [{ key: { pk: 'SPEND#t', sk: '2026-12' }, add: { spentMicros: 30 } }] };
    const forged = [
      { ...good, counters: [{ ...good.counters[0], add: { spentMicros: 0.5 } }] },
      { ...good, counters: [{ ...good.counters[0], add: { spentMicros: 1, budget: 5 } }] },
      { ...good, counters: [{ ...good.counters[0], add: { spentMicros: '30' } }] },
      { ...good, counters: [{ ...good.counters[0], expiresAt: 1.5 }] },
      { ...good, reservation: { pk: 'RESV#t' } },
      { counters: good.counters },
      { ...good, counters: {} },
    ];
    // Framed as the journal frames (length, CRC-32, `["ledger"]`, newline, JSON): a forger's bytes, not the writer's.
    const raw = (w: unknown) => {
      const payload = Buffer.from(`["ledger"]\n${JSON.stringify(w)}`, 'utf8');
      const head = Buffer.alloc(8);
      head.writeUInt32LE(payload.length, 0);
      head.writeUInt32LE(crc32(payload), 4);
      return Buffer.concat([head, payload]);
    };
    expect(entriesOf(raw(good))).toEqual([{ ledger: good }]);
    for (const f of forged) {
      const bytes = Buffer.concat([ledgerFrameOf(good as JournaledLedgerWrite), raw(f), ledgerFrameOf(good as JournaledLedgerWrite)]);
      expect(entriesOf(bytes)).toEqual([{ ledger: good }]);
    }
    // The writer itself never writes what the reader refuses: an unknown field is left out.
    expect(entriesOf(ledgerFrameOf(forged[1] as unknown as JournaledLedgerWrite))).toEqual([{ ledger: { ...good, counters: [{ ...good.counters[0], add: { spentMicros: 1 } }] } }]);
  });

  const reservation = fc.record({
    seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    put: fc.record({ pk: fc.string(), sk: fc.string(), expiresAt: fc.integer({ min: 0, max: 2 ** 40 }), reclaimAfter: fc.integer({ min: 0, max: 2 ** 40 }), body: fc.string() }),
    counters: write.map((w) => w.counters),
  });

  test('a reservation comes back as it was written, between usage rows and settles; a changed byte ends the journal there', () => {
    fc.assert(
      fc.property(reservation, write, fc.nat(), (r, w, flip) => {
        const row: UsageRow = ['t', 's', 'a', 'r', 1, Buffer.from('{}')];
        const frame = reservationFrameOf(r as JournaledReservation);
        const bytes = Buffer.concat([frameOf(row), frame, ledgerFrameOf(w as JournaledLedgerWrite)]);
        const entries = entriesOf(bytes);
        expect(entries).toHaveLength(3);
        expect(entries[1]).toEqual({ reservation: JSON.parse(JSON.stringify(r)) });
        const damaged = Buffer.from(bytes);
        damaged[frameOf(row).length + (flip % frame.length)] ^= 0x10;
        expect(entriesOf(damaged)).toHaveLength(1);
      }),
      { numRuns: 200 },
    );
  });

  test('a reservation frame that is not exactly what the ledger writes (no or a fractional sequence number, a time that is not an integer, no body, a fractional amount) ends the journal', () => {
    const good = { seq: 3, put: { pk: 'RESV#t', sk: 'r1', expiresAt: 20, reclaimAfter: 10, body: '{}' }, counters: [{ key: { pk: 'SPEND#t', sk: '2026-12' }, add: { reservedMicros: 30 } }] };
    const forged = [
      { ...good, seq: 0 },
      { ...good, seq: 1.5 },
      { put: good.put, counters: good.counters },
      { ...good, put: { ...good.put, reclaimAfter: 10.5 } },
      { ...good, put: { ...good.put, expiresAt: '20' } },
      { ...good, put: { pk: 'RESV#t', sk: 'r1', expiresAt: 20, reclaimAfter: 10 } },
      { ...good, put: { ...good.put, sk: 7 } },
      { ...good, counters: [{ ...good.counters[0], add: { reservedMicros: 0.5 } }] },
      { ...good, counters: [{ ...good.counters[0], add: { budget: 1 } }] },
    ];
    const raw = (r: unknown) => {
      const payload = Buffer.from(`["reserve"]\n${JSON.stringify(r)}`, 'utf8');
      const head = Buffer.alloc(8);
      head.writeUInt32LE(payload.length, 0);
      head.writeUInt32LE(crc32(payload), 4);
      return Buffer.concat([head, payload]);
    };
    expect(entriesOf(raw(good))).toEqual([{ reservation: good }]);
    for (const f of forged) {
      const bytes = Buffer.concat([reservationFrameOf(good), raw(f), reservationFrameOf(good)]);
      expect(entriesOf(bytes)).toEqual([{ reservation: good }]);
    }
  });
});

describe('journaled settles', () => {

  test('a settle is on disk when the usage record is, before its SQL ran or any COMMIT: a kill -9 then opens with the spend once and the record', async () => {
    const dir = fresh();
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true });
    const ledger = new EmbeddedGovernanceLedger(db);
    const store = new EmbeddedRouterStore(db);
    try {
      expect(await reserve(ledger, 1)).toEqual({ ok: true });
      const commits = db.commits;
      expect(await settle(ledger, 1, 50, 30)).toEqual({ ok: true });
      await store.putUsage(record(1, { requestId: 'r1' }));
      // The answer would be released now: no COMMIT ran for the settle and the record yet.
      expect(db.commits).toBe(commits);
      const killed = snapshot(dir);
      opened(killed, (after) => {
        expect(after.replayedLedgerWrites).toBe(1);
        expect(usageIds(after)).toEqual(['r1']);
        expect(state(after)).toEqual({ counters: [{ spentMicros: 30, reservedMicros: 0, committedMicros: 30 }], reservations: [] });
      });
      // In this process the SQL waits (the mirror holds it) until a statement needs it, then
      // commits at the end of that turn.
      await turn();
      expect(db.commits).toBe(commits);
      expect(state(db)).toEqual({ counters: [{ spentMicros: 30, reservedMicros: 0, committedMicros: 30 }], reservations: [] });
      await turn();
      expect(db.commits).toBe(commits + 1);
      expect(state(db)).toEqual({ counters: [{ spentMicros: 30, reservedMicros: 0, committedMicros: 30 }], reservations: [] });
    } finally {
      db.close();
    }
  });

  test('replaying is idempotent: the state after the settle committed (its frame still in the journal) opens with the spend once', async () => {
    const dir = fresh();
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true });
    const ledger = new EmbeddedGovernanceLedger(db);
    const store = new EmbeddedRouterStore(db);
    try {
      await reserve(ledger, 1);
      await settle(ledger, 1, 50, 30);
      await store.putUsage(record(1, { requestId: 'r1' }));
      state(db); // a reader: the SQL runs, and commits at the end of the turn
      await turn();
      expect(db.commits).toBe(1);
      expect(journalBytes(dir)).toBeGreaterThan(0);
      afterKill(dir, (after) => {
        expect(after.replayedLedgerWrites).toBe(0);
        expect(state(after)).toEqual({ counters: [{ spentMicros: 30, reservedMicros: 0, committedMicros: 30 }], reservations: [] });
      });
    } finally {
      db.close();
    }
  });

  test('every reader sees a settle at once: its SQL runs before any other statement (a reservation that fits only after it is admitted)', async () => {
    const dir = fresh();
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true });
    const ledger = new EmbeddedGovernanceLedger(db);
    try {
      await reserve(ledger, 1, 60);
      expect(await settle(ledger, 1, 60, 10)).toEqual({ ok: true });
      // Before the settle 60 are committed; after it 10. A reservation of 60 under a ceiling of 40
      // (committed <= 40 before it) passes only against the settled counters.
      expect(await reserve(ledger, 2, 60, 40)).toEqual({ ok: true });
      expect(state(db)).toEqual({ counters: [{ spentMicros: 10, reservedMicros: 60, committedMicros: 70 }], reservations: ['r2'] });
      // A second settle or release of the same reservation finds it gone, as DynamoDB's condition would.
      expect(await release(ledger, 1, 60)).toMatchObject({ ok: false, reservationFailed: true });
      expect(db.counterRows([spend])[0]).toBeDefined();
    } finally {
      db.close();
    }
  });

  test('a COMMIT that fails after the settle was journaled: its SQL runs again in the next group, once; a kill then opens with it once', async () => {
    const dir = fresh();
    const errors: unknown[] = [];
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true, onCommitError: (e) => errors.push(e) });
    const ledger = new EmbeddedGovernanceLedger(db);
    const store = new EmbeddedRouterStore(db);
    try {
      await reserve(ledger, 1);
      state(db); // the reservation's SQL runs, and commits at the end of the turn (the statement is prepared)
      await turn();
      const commit = (db as unknown as { statements: Map<string, { stmt: { _step(): unknown } }> }).statements.get('COMMIT')!.stmt;
      const failing = jest.spyOn(commit, '_step').mockImplementationOnce(() => {
        throw new Error('disk I/O error');
      });
      await settle(ledger, 1, 50, 30);
      await store.putUsage(record(1, { requestId: 'r1' }));
      db.counterRows([{ pk: 'RATE#none', sk: '1' }]); // a reader: the settle's SQL runs; its COMMIT at the end of the turn fails
      await turn();
      expect(failing).toHaveBeenCalled();
      expect(errors).toHaveLength(1);
      failing.mockRestore();
      // Rolled back: the reservation is back in SQLite until the settle runs again (before any read).
      expect(state(db)).toEqual({ counters: [{ spentMicros: 30, reservedMicros: 0, committedMicros: 30 }], reservations: [] });
      await db.durable();
      for (const d of [db, new EmbeddedDatabase({ dir: snapshot(dir) })]) {
        expect(usageIds(d)).toEqual(['r1']);
        expect(state(d)).toEqual({ counters: [{ spentMicros: 30, reservedMicros: 0, committedMicros: 30 }], reservations: [] });
        if (d !== db) d.close();
      }
    } finally {
      db.close();
    }
  });

  test('a settle of a reservation this process did not put (made before a restart) runs and commits at once, as before', async () => {
    const dir = fresh();
    const first = new EmbeddedDatabase({ dir, soleRequest: () => true });
    await reserve(new EmbeddedGovernanceLedger(first), 1);
    first.close();
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true });
    const ledger = new EmbeddedGovernanceLedger(db);
    const store = new EmbeddedRouterStore(db);
    try {
      const commits = db.commits;
      expect(await settle(ledger, 1, 50, 30)).toEqual({ ok: true });
      await store.putUsage(record(1, { requestId: 'r1' }));
      expect(db.commits).toBe(commits + 1);
      expect(entriesOf(readFileSync(join(dir, USAGE_JOURNAL_FILE))).filter((e) => 'ledger' in e)).toEqual([]);
      expect(state(db)).toEqual({ counters: [{ spentMicros: 30, reservedMicros: 0, committedMicros: 30 }], reservations: [] });
    } finally {
      db.close();
    }
  });

  test('a settle the journal could not hold exactly (an amount that is not an integer) runs and commits at once, as before', async () => {
    const dir = fresh();
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true });
    const ledger = new EmbeddedGovernanceLedger(db);
    const store = new EmbeddedRouterStore(db);
    try {
      await reserve(ledger, 1);
      const commits = db.commits;
      expect(await ledger.write({ reservation: { delete: { pk: 'RESV#t', sk: 'r1' } }, counters: [{ key: spend, add: { reservedMicros: -50, committedMicros: -19.5, spentMicros: 30.5 } }] })).toEqual({ ok: true });
      await store.putUsage(record(1, { requestId: 'r1' }));
      expect(db.commits).toBe(commits + 1);
      expect(entriesOf(readFileSync(join(dir, USAGE_JOURNAL_FILE))).filter((e) => 'ledger' in e)).toEqual([]);
      expect(state(db)).toEqual({ counters: [{ spentMicros: 30.5, reservedMicros: 0, committedMicros: 30.5 }], reservations: [] });
    } finally {
      db.close();
    }
  });

  test('kill -9 after any acknowledged step of a run of requests opens with exactly the spend and reservations acknowledged by then', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ amount: fc.integer({ min: 1, max: 1000 }), cost: fc.integer({ min: 0, max: 1000 }), settles: fc.boolean(), waits: fc.boolean() }), { minLength: 1, maxLength: 8 }),
        async (requests) => {
          const dir = fresh();
          const db = new EmbeddedDatabase({ dir, soleRequest: () => true });
          const ledger = new EmbeddedGovernanceLedger(db);
          const store = new EmbeddedRouterStore(db);
          const model = { spent: 0, reserved: 0, committed: 0, open: [] as string[] };
          const checks: { dir: string; expected: ReturnType<typeof state> }[] = [];
          const check = () =>
            checks.push({
              dir: snapshot(dir),
              expected: { counters: [{ spentMicros: model.spent, reservedMicros: model.reserved, committedMicros: model.committed }], reservations: [...model.open].sort() },
            });
          try {
            for (let i = 0; i < requests.length; i++) {
              const r = requests[i];
              expect(await reserve(ledger, i, r.amount)).toEqual({ ok: true });
              Object.assign(model, { reserved: model.reserved + r.amount, committed: model.committed + r.amount, open: [...model.open, `r${i}`] });
              check();
              const cost = Math.min(r.cost, r.amount);
              expect(await (r.settles ? settle(ledger, i, r.amount, cost) : release(ledger, i, r.amount))).toEqual({ ok: true });
              await store.putUsage(record(i, { requestId: `r${i}` }));
              const spent = r.settles ? cost : 0;
              Object.assign(model, { spent: model.spent + spent, reserved: model.reserved - r.amount, committed: model.committed - r.amount + spent, open: model.open.filter((k) => k !== `r${i}`) });
              check();
              if (r.waits) {
                // A reader: the journaled writes' SQL runs and commits at the end of the turn.
                db.counterRows([{ pk: 'RATE#none', sk: String(i) }]);
                await turn();
                check();
              }
            }
          } finally {
            db.close();
          }
          expectSnapshots(checks, state);
        },
      ),
      { numRuns: 15 },
    );
  });
});

describe('journaled reservations', () => {
  const frames = (dir: string) => entriesOf(readFileSync(join(dir, USAGE_JOURNAL_FILE))).filter((e) => !('row' in e));
  /** Statements the database prepares from now on (the fast path reuses prepared statements; a new one shows up here). */
  const statementsRun = (db: EmbeddedDatabase) => {
    const ran: string[] = [];
    const real = EmbeddedDatabase.prototype.runMirrored;
    jest.spyOn(db, 'runMirrored').mockImplementation(function (this: EmbeddedDatabase, sql, params) {
      ran.push(sql);
      return real.call(this, sql, params);
    });
    return ran;
  };

  test('the only request in flight: its reservation is in the journal when the write returns, with no SQL and no COMMIT; a kill -9 then opens with it held once', async () => {
    const dir = fresh();
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true });
    const ledger = new EmbeddedGovernanceLedger(db);
    try {
      state(db); // the tenant's reservations are read once (none)
      const ran = statementsRun(db);
      expect(await reserve(ledger, 1, 70, 1000)).toEqual({ ok: true });
      expect(ran).toEqual([]);
      expect(db.commits).toBe(0);
      expect(frames(dir)).toEqual([{ reservation: expect.objectContaining({ seq: 1, put: expect.objectContaining({ pk: 'RESV#t', sk: 'r1' }) }) }]);
      // The mirror holds it: the next reservation's ceiling counts it, without SQL.
      expect(await reserve(ledger, 2, 40, 60)).toMatchObject({ ok: false, failed: [{ index: 0, item: { committedMicros: 70 } }] });
      afterKill(dir, (after) => {
        expect(after.replayedReservations).toBe(1);
        expect(state(after)).toEqual({ counters: [{ spentMicros: 0, reservedMicros: 70, committedMicros: 70 }], reservations: ['r1'] });
      });
    } finally {
      db.close();
    }
  });

  test('a reservation applied, then reclaimed (a write the journal does not hold), its frame still in the journal: reopening never brings it back', async () => {
    const dir = fresh();
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true });
    const ledger = new EmbeddedGovernanceLedger(db);
    try {
      expect(await reserve(ledger, 1, 50)).toEqual({ ok: true });
      expect(await reclaim(ledger, 1, 50)).toEqual({ ok: true }); // its SQL runs first, then the reclaim's
      await db.durable();
      expect(state(db)).toEqual({ counters: [{ spentMicros: 0, reservedMicros: 0, committedMicros: 0 }], reservations: [] });
      expect(frames(dir)).toHaveLength(1); // the reservation's frame stays until the journal is emptied
      afterKill(dir, (after) => {
        expect(after.replayedReservations).toBe(0);
        expect(state(after)).toEqual({ counters: [{ spentMicros: 0, reservedMicros: 0, committedMicros: 0 }], reservations: [] });
      });
    } finally {
      db.close();
    }
  });

  test('a reservation and its settle fold into one counter update: the reservation row is never written', async () => {
    const dir = fresh();
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true });
    const ledger = new EmbeddedGovernanceLedger(db);
    const store = new EmbeddedRouterStore(db);
    try {
      state(db);
      const ran = statementsRun(db);
      for (let i = 1; i <= 3; i++) {
        expect(await reserve(ledger, i, 50, 10_000)).toEqual({ ok: true });
        expect(await settle(ledger, i, 50, 10 * i)).toEqual({ ok: true });
        await store.putUsage(record(i, { requestId: `r${i}` }));
      }
      expect(ran).toEqual([]);
      expect(state(db)).toEqual({ counters: [{ spentMicros: 60, reservedMicros: 0, committedMicros: 60 }], reservations: [] });
      expect(ran.filter((sql) => /RESV|body/.test(sql) && /INSERT|DELETE/.test(sql))).toEqual([]);
      expect(ran.filter((sql) => sql.startsWith('INSERT INTO counters'))).toHaveLength(1);
      await turn();
      expect(db.commits).toBe(1);
    } finally {
      db.close();
    }
  });

  test('a second reservation with the id of one that exists (made before a restart, unknown to the mirror) is refused, as before', async () => {
    const dir = fresh();
    const first = new EmbeddedDatabase({ dir, soleRequest: () => true });
    await reserve(new EmbeddedGovernanceLedger(first), 1);
    first.close();
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true });
    const ledger = new EmbeddedGovernanceLedger(db);
    try {
      expect(await reserve(ledger, 1)).toEqual({ ok: false, reservationFailed: true, failed: [] });
      expect(await reserve(ledger, 2)).toEqual({ ok: true });
      expect(await reserve(ledger, 2)).toEqual({ ok: false, reservationFailed: true, failed: [] });
      expect(state(db)).toEqual({ counters: [{ spentMicros: 0, reservedMicros: 100, committedMicros: 100 }], reservations: ['r1', 'r2'] });
    } finally {
      db.close();
    }
  });

  test('with another request in flight a reservation is committed before the write returns, as before (a refused COMMIT refuses it and holds nothing)', async () => {
    const dir = fresh();
    let sole = false;
    const db = new EmbeddedDatabase({ dir, soleRequest: () => sole });
    const ledger = new EmbeddedGovernanceLedger(db);
    try {
      expect(await reserve(ledger, 1)).toEqual({ ok: true });
      expect(db.commits).toBe(1);
      expect(frames(dir)).toEqual([]);
      sole = true;
      await reserve(ledger, 2);
      expect(db.commits).toBe(1);
      expect(frames(dir)).toHaveLength(1);
    } finally {
      db.close();
    }
  });

  test('journaled writes that cannot be applied (a full disk): no new reservation or write is taken; once there is room they are applied once, and a kill -9 opens with each once', async () => {
    const dir = fresh();
    const errors: unknown[] = [];
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true, onBackgroundError: (e) => errors.push(e) });
    const ledger = new EmbeddedGovernanceLedger(db);
    try {
      expect(await reserve(ledger, 1, 50)).toEqual({ ok: true });
      const pages = Number(db.one('PRAGMA page_count')?.page_count);
      db.run(`PRAGMA max_page_count = ${pages}`);
      const big = { ...reservationOf(2, 60), createdAt: 'x'.repeat(20_000) };
      expect(await ledger.write({ reservation: { put: big }, counters: [{ key: spend, add: { reservedMicros: 60, committedMicros: 60 } }] })).toEqual({ ok: true });
      // A reader needs them: the folded write fails (the disk is full), they wait.
      expect(() => db.counterRows([{ pk: 'RATE#none', sk: '1' }])).toThrow(/could not be applied/);
      expect(errors.length).toBeGreaterThan(0);
      await expect(reserve(ledger, 3, 10)).rejects.toThrow(/could not be applied/);
      expect(() => db.transaction(() => db.run("INSERT INTO meta(name, value) VALUES ('x', 'y')"))).toThrow(/could not be applied/);
      db.run('PRAGMA max_page_count = 1000000');
      expect(state(db)).toEqual({ counters: [{ spentMicros: 0, reservedMicros: 110, committedMicros: 110 }], reservations: ['r1', 'r2'] });
      expect(await reserve(ledger, 3, 10)).toEqual({ ok: true });
      await db.durable();
      afterKill(dir, (after) => {
        expect(state(after)).toEqual({ counters: [{ spentMicros: 0, reservedMicros: 120, committedMicros: 120 }], reservations: ['r1', 'r2', 'r3'] });
      });
    } finally {
      db.close();
    }
  });

  test('a reservation and a settle whose counter updates land on a reservation row are written at once, not folded: the same rows as one by one', async () => {
    const dir = fresh();
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true });
    const ledger = new EmbeddedGovernanceLedger(db);
    try {
      const own = { pk: 'RESV#t', sk: 'r1' };
      expect(await ledger.write({ reservation: { put: reservationOf(1, 50) }, counters: [{ key: spend, add: { reservedMicros: 50 } }, { key: own, add: { requests: 2 } }] })).toEqual({ ok: true });
      expect(await ledger.write({ reservation: { delete: own }, counters: [{ key: spend, add: { reservedMicros: -50 } }, { key: own, add: { requests: 1 } }] })).toEqual({ ok: true });
      expect(frames(dir)).toEqual([]);
      // One by one: the reservation row (with its 2) is deleted, then the update makes a counter row of 1.
      expect(db.one("SELECT requests, body FROM counters WHERE pk = 'RESV#t' AND sk = 'r1'")).toEqual({ requests: 1, body: null });
    } finally {
      db.close();
    }
  });

  test('a group SQLite rolls back after a second fold joined it: the writes go back in their order (the reservation before its settle) and apply once', async () => {
    const dir = fresh();
    const errors: unknown[] = [];
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true, onBackgroundError: (e) => errors.push(e) });
    const ledger = new EmbeddedGovernanceLedger(db);
    const store = new EmbeddedRouterStore(db);
    try {
      expect(await reserve(ledger, 1, 50)).toEqual({ ok: true });
      db.counterRows([{ pk: 'RATE#none', sk: '1' }]); // the reservation's SQL runs; its group stays open this turn
      expect(await settle(ledger, 1, 50, 20)).toEqual({ ok: true });
      await store.putUsage(record(1, { requestId: 'r1' }));
      // The settle's fold fails and SQLite rolls the whole group back (an I/O error).
      const sqlite = (db as unknown as { db: Database }).db;
      const real = EmbeddedDatabase.prototype.runMirrored;
      const failing = jest.spyOn(db, 'runMirrored').mockImplementationOnce(function (this: EmbeddedDatabase) {
        sqlite.exec('ROLLBACK');
        throw new Error('disk I/O error');
      });
      expect(() => db.counterRows([{ pk: 'RATE#none', sk: '2' }])).toThrow(/could not be applied/);
      failing.mockRestore();
      expect(errors).toHaveLength(1);
      jest.spyOn(db, 'runMirrored').mockImplementation(function (this: EmbeddedDatabase, sql, params) {
        return real.call(this, sql, params);
      });
      // Next try: both, in order, once.
      expect(state(db)).toEqual({ counters: [{ spentMicros: 20, reservedMicros: 0, committedMicros: 20 }], reservations: [] });
      expect(await reserve(ledger, 2, 10)).toEqual({ ok: true });
      await db.durable();
      expectSnapshots([{ dir: snapshot(dir), expected: { spent: 20, reserved: 10, committed: 30, reservations: ['r2'] } }], totals);
    } finally {
      db.close();
    }
  });

  test('kill -9 after any acknowledged step of a run of reservations, settles, reclaims and reads opens with exactly what was acknowledged', async () => {
    const step = fc.oneof(
      fc.record({ op: fc.constant('request' as const), amount: fc.integer({ min: 1, max: 1000 }), cost: fc.integer({ min: 0, max: 1000 }), settles: fc.boolean() }),
      fc.record({ op: fc.constant('reserve' as const), amount: fc.integer({ min: 1, max: 1000 }) }),
      fc.record({ op: fc.constant('reclaim' as const) }),
      fc.record({ op: fc.constant('read' as const) }),
      fc.record({ op: fc.constant('turn' as const) }),
      fc.record({ op: fc.constant('concurrent' as const), amount: fc.integer({ min: 1, max: 1000 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
        const dir = fresh();
        let sole = true;
        const db = new EmbeddedDatabase({ dir, soleRequest: () => sole });
        const ledger = new EmbeddedGovernanceLedger(db);
        const store = new EmbeddedRouterStore(db);
        const model = { spent: 0, reserved: 0, committed: 0, open: new Map<string, number>() };
        const checks: { dir: string; expected: ReturnType<typeof totals> }[] = [];
        const check = () =>
          checks.push({ dir: snapshot(dir), expected: { spent: model.spent, reserved: model.reserved, committed: model.committed, reservations: [...model.open.keys()].sort() } });
        const held = (i: number, amount: number) => {
          Object.assign(model, { reserved: model.reserved + amount, committed: model.committed + amount });
          model.open.set(`r${i}`, amount);
        };
        try {
          for (let i = 0; i < steps.length; i++) {
            const s = steps[i];
            if (s.op === 'request' || s.op === 'reserve' || s.op === 'concurrent') {
              sole = s.op !== 'concurrent';
              expect(await reserve(ledger, i, s.amount, 10_000_000)).toEqual({ ok: true });
              sole = true;
              held(i, s.amount);
              check();
            }
            if (s.op === 'request') {
              const cost = Math.min(s.cost, s.amount);
              const spent = s.settles ? cost : 0;
              expect(await settle(ledger, i, s.amount, spent)).toEqual({ ok: true });
              await store.putUsage(record(i, { requestId: `r${i}` }));
              Object.assign(model, { spent: model.spent + spent, reserved: model.reserved - s.amount, committed: model.committed - s.amount + spent });
              model.open.delete(`r${i}`);
              check();
            } else if (s.op === 'reclaim' && model.open.size > 0) {
              const [sk, amount] = [...model.open][0];
              expect(await reclaim(ledger, Number(sk.slice(1)), amount)).toEqual({ ok: true });
              await db.durable();
              Object.assign(model, { reserved: model.reserved - amount, committed: model.committed - amount });
              model.open.delete(sk);
              check();
            } else if (s.op === 'read') {
              db.counterRows([{ pk: 'RATE#none', sk: String(i) }]);
            } else if (s.op === 'turn') {
              await turn();
              check();
            }
          }
        } finally {
          db.close();
        }
        expectSnapshots(checks, totals);
      }),
      { numRuns: 30 },
    );
  });
});

describe('the journal', () => {
  test('a usage record is on disk when putUsage returns: the state a kill -9 leaves then opens with the record and its settle', async () => {
    const dir = fresh();
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true });
    const ledger = new EmbeddedGovernanceLedger(db);
    const store = new EmbeddedRouterStore(db);
    try {
      const spend = { pk: 'SPEND#t', sk: '2026-12' };
      for (let i = 0; i < 5; i++) {
        const key = { pk: 'RESV#t', sk: `r${i}` };
        const reservation = { key, tenantId: 't', tokenId: 'k', tokenKey: 'tk', period: '2026-12', window: 'w', amountMicros: 50, tpmTokens: 1, model: 'm', createdAt: 'c', reclaimAfter: 1, expiresAt: 2 } as ReservationRecord;
        expect(await ledger.write({ reservation: { put: reservation }, counters: [{ key: spend, add: { reservedMicros: 50, committedMicros: 50 } }] })).toEqual({ ok: true });
        expect(await ledger.write({ reservation: { delete: key }, counters: [{ key: spend, add: { reservedMicros: -50, committedMicros: -20, spentMicros: 30 } }] })).toEqual({ ok: true });
        await store.putUsage(record(i, { requestId: `r${i}` }));
      }
      // Not yet in the table (under the batch size): in the journal only.
      expect(journalBytes(dir)).toBeGreaterThan(0);
      const killed = snapshot(dir);
      const raw = new Database(join(killed, DATABASE_FILE));
      try {
        raw.exec('PRAGMA locking_mode=EXCLUSIVE'); // the VFS has no shared memory for WAL
        expect(raw.all('SELECT count(*) AS n FROM usage')).toEqual([{ n: 0 }]);
      } finally {
        raw.close();
      }
      opened(killed, (after) => {
        expect(usageIds(after)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
        expect(after.all('SELECT spentMicros, reservedMicros, committedMicros FROM counters')).toEqual([{ spentMicros: 150, reservedMicros: 0, committedMicros: 150 }]);
        expect(journalBytes(killed)).toBe(0);
      });
    } finally {
      db.close();
    }
  });

  test('a torn last record (the write a killed process was in) is left out; the records before it are kept', async () => {
    const dir = fresh();
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true });
    const store = new EmbeddedRouterStore(db);
    try {
      for (let i = 0; i < 3; i++) await store.putUsage(record(i));
      const killed = snapshot(dir);
      const size = journalBytes(killed);
      truncateSync(join(killed, USAGE_JOURNAL_FILE), size - 7);
      appendFileSync(join(killed, USAGE_JOURNAL_FILE), Buffer.from([0xff, 0xff]));
      opened(killed, (after) => {
        expect(usageIds(after)).toEqual(['r0', 'r1']);
        // Emptied: the torn bytes are not read again, and the next records are written from the start.
        expect(journalBytes(killed)).toBe(0);
      });
    } finally {
      db.close();
    }
  });

  test('every reader of the usage table sees a record as soon as putUsage returned (the usage report, reclaim, SQL)', async () => {
    const dir = fresh();
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true });
    const store = new EmbeddedRouterStore(db);
    const ledger = new EmbeddedGovernanceLedger(db);
    try {
      await store.putUsage(record(1, { costUsd: 0.000042 } as Partial<UsageRecord>));
      expect(journalBytes(dir)).toBeGreaterThan(0);
      const page = await new EmbeddedUsageRecords(db).queryUsage({ tenantId: 't', from: '2026-12-01T00:00:00.000Z', to: '2026-12-02T00:00:00.000Z', limit: 10 } as never);
      expect(page.records.map((r) => r.requestId)).toEqual(['r1']);
      await store.putUsage(record(2));
      const cost = await ledger.recordedCostMicros({ key: { pk: 'RESV#t', sk: 'r1' }, tenantId: 't', createdAt: record(1).at } as ReservationRecord);
      expect(cost).toBe(42);
      await store.putUsage(record(3));
      expect(usageIds(db)).toEqual(['r1', 'r2', 'r3']);
    } finally {
      db.close();
    }
  });

  test('a read inside a write that is then undone loses no record: the journal is kept until its records are committed in the table', async () => {
    const dir = fresh();
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true });
    const store = new EmbeddedRouterStore(db);
    try {
      await store.putUsage(record(1));
      await store.putUsage(record(2));
      expect(() =>
        db.deferred(() => {
          expect(db.all('SELECT request_id FROM usage ORDER BY request_id').map((r) => r.request_id)).toEqual(['r1', 'r2']);
          throw new Error('undone');
        }),
      ).toThrow('undone');
      await db.durable();
      expect(journalBytes(dir)).toBeGreaterThan(0);
      const killed = snapshot(dir);
      opened(killed, (after) => {
        expect(usageIds(after)).toEqual(['r1', 'r2']);
      });
      expect(usageIds(db)).toEqual(['r1', 'r2']);
    } finally {
      db.close();
    }
  });

  test('a failed journal write fails its group: the settle and the record are written again, once each', async () => {
    const dir = fresh();
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true });
    const ledger = new EmbeddedGovernanceLedger(db);
    const store = new EmbeddedRouterStore(db);
    try {
      const key = { pk: 'RESV#t', sk: 'r1' };
      const spend = { pk: 'SPEND#t', sk: '2026-12' };
      const reservation = { key, tenantId: 't', tokenId: 'k', tokenKey: 'tk', period: '2026-12', window: 'w', amountMicros: 50, tpmTokens: 1, model: 'm', createdAt: 'c', reclaimAfter: 1, expiresAt: 2 } as ReservationRecord;
      expect(await ledger.write({ reservation: { put: reservation }, counters: [{ key: spend, add: { reservedMicros: 50, committedMicros: 50 } }] })).toEqual({ ok: true });
      const journal = (db as unknown as { journal: { append(frames: Buffer[], sync: boolean): void } }).journal;
      const failing = jest.spyOn(journal, 'append').mockImplementationOnce(() => {
        throw new Error('ENOSPC: no space left on device');
      });
      expect(await ledger.write({ reservation: { delete: key }, counters: [{ key: spend, add: { reservedMicros: -50, committedMicros: -20, spentMicros: 30 } }] })).toEqual({ ok: true });
      await store.putUsage(record(1));
      expect(failing).toHaveBeenCalledTimes(2);
      failing.mockRestore();
      const killed = snapshot(dir);
      for (const d of [db, new EmbeddedDatabase({ dir: killed })]) {
        expect(usageIds(d)).toEqual(['r1']);
        expect(d.all('SELECT sk FROM counters WHERE body IS NOT NULL')).toEqual([]);
        expect(d.all('SELECT spentMicros, reservedMicros, committedMicros FROM counters')).toEqual([{ spentMicros: 30, reservedMicros: 0, committedMicros: 30 }]);
        if (d !== db) d.close();
      }
    } finally {
      db.close();
    }
  });

  test('a COMMIT that fails after the journal was written: the record is stored once, the spend once', async () => {
    const dir = fresh();
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true });
    const ledger = new EmbeddedGovernanceLedger(db);
    const store = new EmbeddedRouterStore(db);
    try {
      const spend = { pk: 'SPEND#t', sk: '2026-12' };
      expect(await ledger.write({ counters: [{ key: spend, add: { spentMicros: 1 } }] })).toEqual({ ok: true });
      await db.durableNow(); // committed: the COMMIT statement is prepared
      const commit = (db as unknown as { statements: Map<string, { stmt: { _step(): unknown } }> }).statements.get('COMMIT')!.stmt;
      const failing = jest.spyOn(commit, '_step').mockImplementationOnce(() => {
        throw new Error('disk I/O error');
      });
      expect(await ledger.write({ counters: [{ key: spend, add: { spentMicros: 30 } }] })).toEqual({ ok: true });
      await store.putUsage(record(1));
      expect(failing).toHaveBeenCalled();
      failing.mockRestore();
      for (const d of [db, new EmbeddedDatabase({ dir: snapshot(dir) })]) {
        expect(usageIds(d)).toEqual(['r1']);
        expect(d.all('SELECT spentMicros FROM counters')).toEqual([{ spentMicros: 31 }]);
        if (d !== db) d.close();
      }
    } finally {
      db.close();
    }
  });

  test('records are moved into the table in batches, off the request that wrote them, and a clean stop empties the journal', async () => {
    const dir = fresh();
    const db = new EmbeddedDatabase({ dir, soleRequest: () => true });
    const store = new EmbeddedRouterStore(db);
    for (let i = 0; i < 300; i++) {
      await store.putUsage(record(i));
      await new Promise((r) => setImmediate(r));
    }
    expect(db.journalImports).toBeGreaterThanOrEqual(2);
    await store.putUsage(record(300));
    db.close();
    expect(journalBytes(dir)).toBe(0);
    expect(existsSync(join(dir, USAGE_JOURNAL_FILE))).toBe(true);
    const raw = new Database(join(dir, DATABASE_FILE));
    try {
      raw.exec('PRAGMA locking_mode=EXCLUSIVE'); // the VFS has no shared memory for WAL
      expect(raw.all('SELECT count(*) AS n FROM usage')).toEqual([{ n: 301 }]);
    } finally {
      raw.close();
    }
  });

  test('in memory there is no journal: records go into the table in the group, as before', async () => {
    const db = new EmbeddedDatabase();
    try {
      const store = new EmbeddedRouterStore(db);
      await store.putUsage(record(1));
      expect(usageIds(db)).toEqual(['r1']);
    } finally {
      db.close();
    }
  });
});
