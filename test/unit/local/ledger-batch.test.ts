/**
 * Folding journaled ledger writes (local/embedded/ledger-batch.ts): applying the fold is applying
 * the writes one by one, in order, for any run of reservations, settles and releases whose
 * conditions hold (what the ledger journals): the same counters table, row for row.
 */
import fc from 'fast-check';
import { EmbeddedDatabase, SqlValue } from '../../../local/embedded/database';
import { pushCounterParams, upsertSql } from '../../../local/embedded/counter-sql';
import { foldLedgerEntries, LedgerEntry } from '../../../local/embedded/ledger-batch';
import type { JournaledLedgerWrite } from '../../../local/embedded/usage-journal';

type Counters = JournaledLedgerWrite['counters'];

const INSERT_RESERVATION = 'INSERT INTO counters(pk, sk, reclaim_after, expires_at, body) VALUES (?, ?, ?, ?, ?)';
const DELETE_RESERVATION = 'DELETE FROM counters WHERE pk = ? AND sk = ? AND body IS NOT NULL';

function upsert(db: EmbeddedDatabase, counters: Counters): void {
  if (counters.length === 0) return;
  const params: SqlValue[] = [];
  for (const u of counters) pushCounterParams(params, u);
  db.run(upsertSql(counters.length), params);
}

/** The writes one by one, as the ledger's own statements would apply them. */
function oneByOne(db: EmbeddedDatabase, entries: readonly LedgerEntry[]): void {
  for (const e of entries) {
    if ('reserve' in e) {
      const p = e.reserve.put;
      expect(db.run(INSERT_RESERVATION, [p.pk, p.sk, p.reclaimAfter, p.expiresAt, p.body])).toBe(1);
      upsert(db, e.reserve.counters);
    } else {
      expect(db.run(DELETE_RESERVATION, [e.settle.reservation.pk, e.settle.reservation.sk])).toBe(1);
      upsert(db, e.settle.counters);
    }
  }
}

/** The fold, applied as database.ts applies it: deletes, inserts, one upsert. */
function folded(db: EmbeddedDatabase, entries: readonly LedgerEntry[]): void {
  const b = foldLedgerEntries(entries);
  for (const d of b.deletes) expect(db.run(DELETE_RESERVATION, [d.pk, d.sk])).toBe(1);
  for (const p of b.inserts) expect(db.run(INSERT_RESERVATION, [p.pk, p.sk, p.reclaimAfter, p.expiresAt, p.body])).toBe(1);
  upsert(db, b.counters);
}

const table = (db: EmbeddedDatabase) => db.all('SELECT * FROM counters ORDER BY pk, sk');

const counterKey = fc.constantFrom({ pk: 'SPEND#t', sk: '2026-12' }, { pk: 'SPEND#t#tk', sk: '2026-12' }, { pk: 'RATE#t', sk: 'w1' }, { pk: 'RATE#t', sk: 'w2' });
const amount = fc.integer({ min: -1_000_000, max: 1_000_000 });
const update = fc.record(
  {
    key: counterKey,
    add: fc.record({ spentMicros: amount, reservedMicros: amount, committedMicros: amount, requests: amount, tokens: amount }, { requiredKeys: [] }),
    expiresAt: fc.integer({ min: 0, max: 2 ** 40 }),
    tokenId: fc.constantFrom('a', 'b', 'c'),
  },
  { requiredKeys: ['key', 'add'] },
);

/** A run whose conditions hold: a reservation's id is new, a settle names a reservation that is held (made before the run, or in it). */
const run = fc
  .tuple(
    fc.array(fc.tuple(fc.boolean(), fc.array(update, { maxLength: 3 })), { minLength: 1, maxLength: 20 }),
    fc.array(fc.array(update, { maxLength: 2 }), { maxLength: 3 }),
  )
  .map(([steps, before]) => {
    const held = before.map((_, i) => `old${i}`);
    const entries: LedgerEntry[] = [];
    let seq = 0;
    steps.forEach(([settles, counters], i) => {
      if (settles && held.length > 0) {
        const sk = held.splice(i % held.length, 1)[0];
        entries.push({ settle: { reservation: { pk: 'RESV#t', sk }, counters } });
      } else {
        const sk = `r${i}`;
        held.push(sk);
        entries.push({ reserve: { seq: ++seq, put: { pk: 'RESV#t', sk, expiresAt: 100 + i, reclaimAfter: 50 + i, body: `{"n":${i}}` }, counters } });
      }
    });
    return { before, entries };
  });

describe('folding journaled ledger writes', () => {
  test('the fold applied gives the table the writes applied one by one give, row for row', () => {
    fc.assert(
      fc.property(run, ({ before, entries }) => {
        const a = new EmbeddedDatabase();
        const b = new EmbeddedDatabase();
        try {
          for (const db of [a, b]) {
            before.forEach((counters, i) => {
              db.run(INSERT_RESERVATION, ['RESV#t', `old${i}`, 1, 2, '{}']);
              upsert(db, counters);
            });
          }
          oneByOne(a, entries);
          folded(b, entries);
          expect(table(b)).toEqual(table(a));
        } finally {
          a.close();
          b.close();
        }
      }),
      { numRuns: 300 },
    );
  });

  test('a reservation settled in the same batch writes no row; the highest sequence number is the last reservation’s', () => {
    const put = (seq: number, sk: string): LedgerEntry => ({ reserve: { seq, put: { pk: 'RESV#t', sk, expiresAt: 2, reclaimAfter: 1, body: '{}' }, counters: [{ key: { pk: 'SPEND#t', sk: 'm' }, add: { reservedMicros: 10 } }] } });
    const settle = (sk: string): LedgerEntry => ({ settle: { reservation: { pk: 'RESV#t', sk }, counters: [{ key: { pk: 'SPEND#t', sk: 'm' }, add: { reservedMicros: -10, spentMicros: 3 } }] } });
    const b = foldLedgerEntries([put(4, 'a'), put(5, 'b'), settle('a'), settle('old')]);
    expect(b.inserts.map((p) => p.sk)).toEqual(['b']);
    expect(b.deletes).toEqual([{ pk: 'RESV#t', sk: 'old' }]);
    expect(b.counters).toEqual([{ key: { pk: 'SPEND#t', sk: 'm' }, add: { reservedMicros: 0, spentMicros: 6 } }]);
    expect(b.seq).toBe(5);
  });

  test('a sum that would not be exact refuses the fold (nothing is applied inexactly)', () => {
    const big = (seq: number): LedgerEntry => ({ reserve: { seq, put: { pk: 'RESV#t', sk: `r${seq}`, expiresAt: 2, reclaimAfter: 1, body: '{}' }, counters: [{ key: { pk: 'SPEND#t', sk: 'm' }, add: { tokens: Number.MAX_SAFE_INTEGER } }] } });
    expect(() => foldLedgerEntries([big(1), big(2)])).toThrow(/safe integer/);
  });
});
