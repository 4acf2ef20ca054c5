/**
 * Attacks on the exact counter mirror (local/embedded/counter-mirror.ts): statements that write
 * the counters table however they are spelled, statements with a tail, the entry cap's eviction in
 * the middle of a budget, values the mirror cannot hold, and keys that would collide if joined
 * with a separator. After each, what the request reads and what a reservation's ceiling check
 * decides must be what SQLite holds.
 */
import fc from 'fast-check';
import { EmbeddedDatabase } from '../../../local/embedded/database';
import { EmbeddedGovernanceLedger } from '../../../local/embedded/embedded-governance-ledger';
import { EmbeddedRouterStore } from '../../../local/embedded/embedded-router-store';
import { counterItemOf } from '../../../local/embedded/rows';
import type { CounterKey } from '../../../lambda/core/router/governance';
import type { LedgerWrite } from '../../../lambda/core/governance/ledger';
import type { UsageRecord } from '../../../lambda/core/router/usage-record';

let db: EmbeddedDatabase;
let ledger: EmbeddedGovernanceLedger;
beforeEach(() => {
  db = new EmbeddedDatabase();
  ledger = new EmbeddedGovernanceLedger(db);
});
afterEach(() => db.close());

const spend = { pk: 'SPEND#t', sk: '2026-12' };
const rate = { pk: 'RATE#t', sk: '2026-12-01T00:00Z' };

const read = async (keys: readonly CounterKey[]) => (await new EmbeddedRouterStore(db).loadRequestContext('v', 't', [], keys)).counters;
const truth = (keys: readonly CounterKey[]) => {
  const out = new Map<string, Record<string, unknown>>();
  for (const k of keys) {
    const row = db.one('SELECT * FROM counters WHERE pk = ? AND sk = ?', [k.pk, k.sk]);
    if (row) out.set(`${k.pk}|${k.sk}`, counterItemOf(row));
  }
  return out;
};
const expectExact = async (keys: readonly CounterKey[] = [spend, rate]) => expect(await read(keys)).toEqual(truth(keys));

/** A reservation of `amount` against a monthly budget of `budget` (micros) and 100 requests a minute. */
let next = 0;
const reserve = (amount: number, budget: number): LedgerWrite => ({
  reservation: {
    put: {
      key: { pk: 'RESV#t', sk: `r${next++}` }, tenantId: 't', tokenId: 'k1', tokenKey: 'k1', period: '2026-12', window: 'w', amountMicros: amount, tpmTokens: 1,
      model: 'm', createdAt: '2026-12-01T00:00:00.000Z', reclaimAfter: 100, expiresAt: 200,
    },
  },
  counters: [
    { key: spend, add: { spentMicros: 0, reservedMicros: amount, committedMicros: amount }, ceilings: { committedMicros: budget - amount }, expiresAt: 500 },
    { key: rate, add: { requests: 1, tokens: 1 }, ceilings: { requests: 99 }, expiresAt: 600 },
  ],
});
/** Whether a reservation of `amount` fits `budget` by what SQLite holds (the ceiling check's rule). */
const fitsBySqlite = (amount: number, budget: number) => {
  const row = db.one('SELECT committedMicros FROM counters WHERE pk = ? AND sk = ?', [spend.pk, spend.sk]);
  return !row || row.committedMicros === null || Number(row.committedMicros) <= budget - amount;
};

describe('statements that write the counters table, however spelled, executed', () => {
  const usageInsert = "INSERT INTO usage(tenant_id, sk, at, request_id, expires_at, body) VALUES ('t', 's', 'a', 'r', 1, '{}')";
  test.each([
    '/* an admin note */ UPDATE counters SET committedMicros = 950',
    '-- an admin note\nUPDATE counters SET committedMicros = 950',
    '  update\n\tcounters   set committedMicros=950',
    "WITH x AS (SELECT 950 AS v) INSERT INTO counters(pk, sk, committedMicros) SELECT 'SPEND#t', '2026-12', v FROM x WHERE 1 ON CONFLICT(pk, sk) DO UPDATE SET committedMicros = excluded.committedMicros",
    "REPLACE INTO counters(pk, sk, committedMicros, requests) VALUES ('SPEND#t', '2026-12', 950, NULL)",
    "insert or replace into counters(pk, sk, committedMicros) values ('SPEND#t', '2026-12', 950)",
    "INSERT INTO counters(pk, sk, committedMicros) VALUES ('SPEND#t', '2026-12', 950) ON CONFLICT DO UPDATE SET committedMicros = 950",
    'UPDATE OR REPLACE counters SET committedMicros = 950',
    'UPDATE main.counters SET committedMicros = 950',
    'UPDATE "counters" SET committedMicros = 950',
    'UPDATE [counters] SET committedMicros = 950',
    'DELETE FROM counters',
    "DELETE FROM counters WHERE pk = 'SPEND#t' RETURNING pk",
    // A tail after the first statement is not run by the binding (only the first is compiled).
    `${usageInsert}; DELETE FROM counters`,
    'UPDATE tokens SET body = body WHERE 0; UPDATE counters SET committedMicros = 950',
  ])('%s', async (sql) => {
    expect(await ledger.write(reserve(40, 1000))).toEqual({ ok: true });
    await db.durable();
    await expectExact(); // the mirror knows both rows now
    db.transaction(() => db.run(sql));
    await expectExact();
    // The ceiling check decides by what SQLite holds: a reservation of 100 against 1000.
    const fits = fitsBySqlite(100, 1000);
    expect((await ledger.write(reserve(100, 1000))).ok).toBe(fits);
    await db.durable();
    await expectExact();
  });
});

test('the entry cap is reached in the middle of a budget (between the read and the ceiling check, and between two writes): decisions stay those of SQLite', async () => {
  const others = Array.from({ length: 10_050 }, (_, i) => ({ pk: `RATE#o${i}`, sk: '2026-12-01T00:00Z' }));
  let granted = 0;
  for (let round = 0; round < 12; round++) {
    await expectExact();
    // Known-absent rows of other tenants fill the mirror past its cap (it starts over).
    await read(others.slice(round * 900, round * 900 + 900));
    const r = await ledger.write(reserve(90, 1000));
    if (r.ok) granted++;
    expect(r.ok).toBe(granted <= 11 && granted * 90 <= 1000 && r.ok);
    await db.durable();
    await expectExact();
  }
  // 1000 / 90: eleven reservations fit, the twelfth does not.
  expect(granted).toBe(11);
  expect(db.one('SELECT committedMicros FROM counters WHERE pk = ? AND sk = ?', [spend.pk, spend.sk])).toEqual({ committedMicros: 990 });
  expect(db.one('SELECT requests FROM counters WHERE pk = ? AND sk = ?', [rate.pk, rate.sk])).toEqual({ requests: 11 });
});

test('values the mirror cannot hold (beyond 2^53, fractions, text, blobs, a non-text token id) are read from SQLite every time, and decided by its values', async () => {
  for (const [value, fits] of [
    ['9007199254740993', false],
    ['1e300', false],
    ['899.5', true],
    ["'950'", false], // INTEGER affinity: SQLite holds the number 950 (the mirror may hold it)
    ["'95x'", true], // text that is no number: NaN, not over
    ["x'00'", true], // a blob compares as NaN: not over, as before the mirror
    ['-9007199254740993', true],
  ] as const) {
    db.transaction(() => db.run(`INSERT OR REPLACE INTO counters(pk, sk, committedMicros, token_id) VALUES ('SPEND#t', '2026-12', ${value}, 7)`));
    await expectExact();
    const held = db.one("SELECT typeof(committedMicros) AS t FROM counters WHERE pk = 'SPEND#t'")!.t;
    if (held !== 'integer') expect(db.counters.get(spend.pk, spend.sk)).toBeUndefined();
    const r = await ledger.write(reserve(100, 1000));
    expect(r.ok).toBe(fits);
    await db.durable();
    await expectExact();
  }
});

test('keys that would collide if joined with a separator, and keys with U+FFFD and surrogate pairs, are kept apart', async () => {
  const keys = [
    { pk: 'SPEND#t', sk: '#kx2026-12' },
    { pk: 'SPEND#t#kx', sk: '2026-12' },
    { pk: 'SPEND#t#kx2026', sk: '-12' },
    { pk: '1:a', sk: 'b' },
    { pk: '1', sk: ':ab' },
    { pk: 'SPEND#t\uFFFD', sk: '2026-12' },
    { pk: 'SPEND#t\uD83D\uDE00', sk: '2026-12' },
    { pk: 'SPEND#t', sk: '2026-12\uFFFD' },
  ];
  await expectExact(keys); // all known absent
  for (let i = 0; i < keys.length; i++) {
    const w: LedgerWrite = { counters: [{ key: keys[i], add: { committedMicros: 10 * (i + 1), requests: 1 }, ceilings: { committedMicros: 10 * (i + 1) } }] };
    expect(await ledger.write(w)).toEqual({ ok: true });
    await expectExact(keys);
  }
  await db.durable();
  expect(db.one('SELECT count(*) AS n FROM counters')).toEqual({ n: keys.length });
  // Each row holds its own count: one more write each, under a ceiling only its own value decides.
  for (let i = 0; i < keys.length; i++) {
    const over: LedgerWrite = { counters: [{ key: keys[i], add: { committedMicros: 1 }, ceilings: { committedMicros: 10 * (i + 1) - 1 } }] };
    expect(await ledger.write(over)).toMatchObject({ ok: false, failed: [{ index: 0, item: { committedMicros: 10 * (i + 1), requests: 1 } }] });
  }
  await expectExact(keys);
});

test.each([
  ['a NUL character (cut short)', { pk: 'SPEND#t', sk: '2026-12\0other' }],
  ['reversed surrogates (encoded as another text)', { pk: 'SPEND#t', sk: '2026-12\uDC00\uD800other' }],
  ['a lone surrogate', { pk: 'SPEND#t\uD800', sk: '2026-12' }],
])('a key with %s, which the SQLite binding would store as another text, is refused: never answered from or written to another row', async (_what, alias) => {
  expect(await ledger.write(reserve(100, 1000))).toEqual({ ok: true });
  await db.durable();
  await expectExact(); // the mirror knows the real row
  // A write under the aliasing key must not land on the real row behind the mirror's back.
  const before = db.all('SELECT * FROM counters ORDER BY pk, sk');
  await expect(ledger.write({ counters: [{ key: alias, add: { committedMicros: 850 } }] })).rejects.toThrow(/NUL character or is not well-formed/);
  await db.durable().catch(() => undefined);
  expect(db.all('SELECT * FROM counters ORDER BY pk, sk')).toEqual(before);
  await expectExact();
  // Nor is a read under it answered with the real row (or as "no row").
  await expect(read([alias])).rejects.toThrow(/NUL character or is not well-formed/);
  const tenant = `acme${alias.sk.slice(7) || alias.pk.slice(7)}`;
  expect(() => db.one('SELECT body FROM tenants WHERE tenant_id = ?', [tenant])).toThrow(/NUL character or is not well-formed/);
  expect(() => db.transaction(() => db.run('INSERT INTO tenants(tenant_id, body) VALUES (?, ?)', [tenant, '{}']))).toThrow(/NUL character or is not well-formed/);
  expect(db.one('SELECT count(*) AS n FROM tenants')).toEqual({ n: 0 });
  // The budget is decided by what SQLite holds: 100 reserved of 1000, so 900 more fit.
  expect(await ledger.write(reserve(900, 1000))).toEqual({ ok: true });
  expect((await ledger.write(reserve(1, 1000))).ok).toBe(false);
  await db.durable();
  await expectExact();
});

test('property: a usage record and a reservation bound as UTF-8 bytes (CAST(? AS TEXT)) are stored as exactly their JSON text and read back as the same values, whatever their strings hold (lone and reversed surrogates, NUL, U+FFFD, astral)', async () => {
  const store = new EmbeddedRouterStore(db);
  const nasty = fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }), fc.constantFrom('\uD800', '\uDC00\uD800', 'a\0b', '\uFFFD', '\u{1F600}', '\u2028'));
  let n = 0;
  await fc.assert(
    fc.asyncProperty(nasty, nasty, async (model, route) => {
      const id = `r${n++}`;
      const record = { requestId: id, tenantId: 't', tokenId: 'k', route, model, stream: false, status: 200, decision: 'ok', at: '2026-12-01T00:00:00.000Z', costUsd: 0.00003, latencyMs: 1, fallbackChain: [model] } as unknown as UsageRecord;
      await store.putUsage(record);
      const reservation = { key: { pk: 'RESV#t', sk: id }, tenantId: 't', tokenId: 'k', tokenKey: route, period: '2026-12', window: 'w', amountMicros: 5, tpmTokens: 1, model, createdAt: '2026-12-01T00:00:00.000Z', reclaimAfter: 1, expiresAt: 2 };
      expect(await ledger.write({ reservation: { put: reservation }, counters: [] })).toEqual({ ok: true });
      await db.durable();
      const usage = db.one('SELECT typeof(body) AS t, body, length(CAST(body AS BLOB)) AS n FROM usage WHERE request_id = ?', [id])!;
      expect(usage).toEqual({ t: 'text', body: JSON.stringify(record), n: Buffer.byteLength(JSON.stringify(record)) });
      expect(JSON.parse(String(usage.body))).toEqual(record);
      const held = db.one('SELECT body FROM counters WHERE pk = ? AND sk = ?', ['RESV#t', id])!;
      expect(held.body).toBe(JSON.stringify(reservation));
      expect(JSON.parse(String(held.body))).toEqual(reservation);
    }),
    { numRuns: 200 },
  );
});
