/**
 * Journaled ledger writes (reservations, settles and releases: usage-journal.ts) folded into the
 * few statements that apply them all (database.ts `drain`). Their conditions were checked when
 * they were journaled, and none updates a counter on a reservation row (the ledger journals only
 * those: embedded-governance-ledger.ts), so applying them in one go is applying them one by one:
 * - a reservation and a settle or release of it in the same batch cancel out (the row is never
 *   written); otherwise a reservation is one row to insert, a settle one row to delete;
 * - the counter updates of one key become one update: the sum of each field that any of them
 *   sets (a field none sets is left alone), the first expiry given (the upsert keeps the first),
 *   the last token id given (the upsert takes the newest).
 */
import { COUNTER_FIELDS, CounterField } from '../../lambda/core/governance/ledger';
import type { JournaledLedgerWrite, JournaledReservation } from './usage-journal';

export type LedgerEntry = { readonly settle: JournaledLedgerWrite } | { readonly reserve: JournaledReservation };

type Counters = JournaledLedgerWrite['counters'];

export interface NetCounterUpdate {
  readonly key: { readonly pk: string; readonly sk: string };
  readonly add: Partial<Record<CounterField, number>>;
  expiresAt?: number;
  tokenId?: string;
}

export interface LedgerBatch {
  /** Reservation rows to insert (each must be new). */
  readonly inserts: JournaledReservation['put'][];
  /** Reservation rows to delete (each must exist). */
  readonly deletes: { readonly pk: string; readonly sk: string }[];
  /** One update per counter key, in the order the keys were first written. */
  readonly counters: NetCounterUpdate[];
  /** The highest reservation sequence number in the batch (0: none). */
  readonly seq: number;
}

/** An unambiguous map key of (pk, sk). */
const keyOf = (pk: string, sk: string) => `${pk.length}:${pk}${sk}`;

export function foldLedgerEntries(entries: readonly LedgerEntry[]): LedgerBatch {
  const puts = new Map<string, JournaledReservation['put']>();
  const deletes: { pk: string; sk: string }[] = [];
  const net = new Map<string, NetCounterUpdate>();
  let seq = 0;
  const add = (counters: Counters) => {
    for (const u of counters) {
      const k = keyOf(u.key.pk, u.key.sk);
      let n = net.get(k);
      if (!n) net.set(k, (n = { key: u.key, add: {} }));
      for (const f of COUNTER_FIELDS) {
        const v = u.add[f];
        if (v === undefined) continue;
        const sum = (n.add[f] ?? 0) + v;
        if (!Number.isSafeInteger(sum)) throw new Error('embedded store: a counter sum is not a safe integer');
        n.add[f] = sum;
      }
      if (n.expiresAt === undefined && u.expiresAt !== undefined) n.expiresAt = u.expiresAt;
      if (u.tokenId !== undefined) n.tokenId = u.tokenId;
    }
  };
  for (const e of entries) {
    if ('reserve' in e) {
      const p = e.reserve.put;
      puts.set(keyOf(p.pk, p.sk), p);
      seq = Math.max(seq, e.reserve.seq);
      add(e.reserve.counters);
    } else {
      const r = e.settle.reservation;
      const k = keyOf(r.pk, r.sk);
      if (puts.has(k)) puts.delete(k);
      else deletes.push(r);
      add(e.settle.counters);
    }
  }
  return { inserts: [...puts.values()], deletes, counters: [...net.values()], seq };
}
