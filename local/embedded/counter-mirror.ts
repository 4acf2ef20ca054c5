/**
 * An exact in-process mirror of governance counter rows (counters table, SPEND#/RATE# keys), so
 * the request's read and a reservation's ceiling check need no SELECT once a row is known.
 *
 * Exact, not "fresh enough", by the same rules as the row cache (row-cache.ts): only this process
 * writes the database (EXCLUSIVE lock, lock file); an entry is filled only from a row SQLite
 * returned, and changed only by the ledger's own upsert after SQLite ran it (the same arithmetic
 * in JavaScript, on values where it is exact: safe integers); any other statement that may write
 * the counters table (the expiry sweep, anything not recognised), every rollback, undo and failed
 * COMMIT, and a group SQLite rolled back by itself clear the whole mirror (database.ts). An entry
 * holds numbers, an expiry and a token id (an id, not a secret); it reflects the open group's
 * uncommitted writes exactly as a SELECT on this connection would.
 *
 * A row whose values are not plain numbers (a malformed or hand-edited row) is not mirrored: it is
 * read from SQLite every time, so its odd values keep SQLite's own semantics.
 *
 * It also knows which reservation rows exist for certain: those the ledger put in this process
 * and that nothing deleted since (by the same rules: any statement the ledger does not run itself,
 * any rollback, clears them). A settle of such a reservation cannot fail its condition, so the
 * ledger journals it and lets its SQL run later (database.ts `deferredApply`). For a tenant whose
 * reservation rows were all read at once (`reservationsLoaded`), it also knows which do not exist:
 * a new reservation with such a key cannot fail its condition either, and is journaled too
 * (`journalReservation`). Any clear forgets both.
 */
import { COUNTER_FIELDS, CounterUpdate, CounterValues } from '../../lambda/core/governance/ledger';
import type { Row } from './database';

/** One counters row as mirrored: its counter fields (COUNTER_FIELDS order, null when NULL), expiry and token id. */
export interface CounterRow {
  readonly values: readonly (number | null)[];
  readonly expiresAt: number | null;
  readonly tokenId: string | null;
}

/**
 * Statements that cannot change a counters row: reads, transaction control, and writes whose
 * target is another table (a write changes only its target: no triggers, no foreign keys).
 * Everything else clears the mirror, unless the ledger runs it through the database's
 * `runMirrored` and updates the mirror itself.
 */
const KEEPS_MIRROR =
  /^\s*(?:SELECT\b|(?:BEGIN IMMEDIATE|COMMIT|SAVEPOINT \w+|RELEASE \w+)$|PRAGMA wal_checkpoint\b|(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|UPDATE|DELETE\s+FROM)\s+(?:usage|response_cache|audit|meta|tenants|tokens|secrets|erasure_keys)\b)/i;

export function clearsCounterMirror(sql: string): boolean {
  return !KEEPS_MIRROR.test(sql);
}

/** Entries kept before the mirror starts over (rate windows add keys every minute): a bound on memory. */
const MAX_ENTRIES = 10_000;

const exact = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

/** A mirrored row from a row SQLite returned; undefined when its values are not exact numbers. */
export function mirrorOf(row: Row): CounterRow | undefined {
  const values: (number | null)[] = [];
  for (const f of COUNTER_FIELDS) {
    const v = row[f];
    if (v !== null && !exact(v)) return undefined;
    values.push(v);
  }
  const expiresAt = row.expires_at;
  const tokenId = row.token_id;
  if (expiresAt !== null && !exact(expiresAt)) return undefined;
  if (tokenId !== null && typeof tokenId !== 'string') return undefined;
  return { values, expiresAt, tokenId };
}

/** The row after the ledger's upsert of `u` (embedded-governance-ledger.ts); undefined when not exact. */
export function afterUpsert(before: CounterRow | null, u: CounterUpdate): CounterRow | undefined {
  const values: (number | null)[] = [];
  for (let i = 0; i < COUNTER_FIELDS.length; i++) {
    const add = u.add[COUNTER_FIELDS[i]];
    const old = before ? before.values[i] : null;
    if (add === undefined || add === null) {
      values.push(old);
      continue;
    }
    if (!exact(add)) return undefined;
    // A new row takes the value as given; an existing one adds to it (NULL counts as 0).
    const next = before ? (old ?? 0) + add : add;
    if (!exact(next)) return undefined;
    values.push(next);
  }
  const expiresAt = u.expiresAt === undefined ? null : u.expiresAt;
  if (expiresAt !== null && !exact(expiresAt)) return undefined;
  const tokenId = u.tokenId === undefined ? null : u.tokenId;
  if (!before) return { values, expiresAt, tokenId };
  return { values, expiresAt: before.expiresAt ?? expiresAt, tokenId: tokenId ?? before.tokenId };
}

/** A mirrored row, not a row as SQLite returns it (whose column values are never arrays). */
export function isMirrored(row: CounterRow | Row): row is CounterRow {
  return Array.isArray((row as { values?: unknown }).values);
}

/** The counter fields of a mirrored row, as governance reads them (absent fields absent). */
export function valuesOfMirrored(row: CounterRow): CounterValues {
  const out: CounterValues = {};
  for (let i = 0; i < COUNTER_FIELDS.length; i++) {
    const v = row.values[i];
    if (v !== null) out[COUNTER_FIELDS[i]] = v;
  }
  return out;
}

/** A counters row as the router's read returns it (the same fields counterItemOf gives for the row). */
export function itemOfMirrored(pk: string, sk: string, row: CounterRow): Record<string, unknown> {
  const item: Record<string, unknown> = { pk, sk, ...valuesOfMirrored(row) };
  if (row.expiresAt !== null) item.expiresAt = row.expiresAt;
  if (row.tokenId !== null) item.tokenId = row.tokenId;
  return item;
}

/** An unambiguous map key of (pk, sk). */
const keyOf = (pk: string, sk: string) => `${pk.length}:${pk}${sk}`;

export class CounterMirror {
  /** null: known to have no row. */
  private readonly entries = new Map<string, CounterRow | null>();
  /** Keys of reservation rows known to exist. */
  private readonly live = new Set<string>();
  /** Reservation partition keys (RESV#<tenant>) whose every row is in `live`. */
  private readonly complete = new Set<string>();
  /** Clears so far (tests). */
  clears = 0;

  /** The mirrored row; null: no row; undefined: not known (read it from SQLite). */
  get(pk: string, sk: string): CounterRow | null | undefined {
    return this.entries.get(keyOf(pk, sk));
  }

  /** Remembers what SQLite returned for (pk, sk): the row (if exact) or no row. */
  remember(pk: string, sk: string, row: Row | undefined): void {
    if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
    const mirrored = row === undefined ? null : mirrorOf(row);
    if (mirrored === undefined) this.entries.delete(keyOf(pk, sk));
    else this.entries.set(keyOf(pk, sk), mirrored);
  }

  /** After the ledger's upsert of `updates` ran: known rows follow it, unknown ones stay unknown. */
  applied(updates: readonly CounterUpdate[]): void {
    for (const u of updates) {
      const key = keyOf(u.key.pk, u.key.sk);
      const before = this.entries.get(key);
      if (before === undefined) continue;
      const after = afterUpsert(before, u);
      if (after === undefined) this.entries.delete(key);
      else this.entries.set(key, after);
    }
  }

  /** Forgets one key (a statement changed its row in a way the mirror does not follow). */
  forget(pk: string, sk: string): void {
    this.entries.delete(keyOf(pk, sk));
  }

  clear(): void {
    if (this.entries.size > 0) this.entries.clear();
    if (this.live.size > 0 || this.complete.size > 0) this.forgetReservations();
    this.clears++;
  }

  private forgetReservations(): void {
    this.live.clear();
    this.complete.clear();
  }

  /** The ledger put this reservation row (in the open group: a rollback clears it). */
  reservationPut(pk: string, sk: string): void {
    if (this.live.size >= MAX_ENTRIES) this.forgetReservations();
    this.live.add(keyOf(pk, sk));
  }

  /** Every reservation row of `pk`, as SQLite returned them: from now on a key not among them is known not to exist. */
  reservationsLoaded(pk: string, sks: readonly string[]): void {
    if (this.live.size + sks.length >= MAX_ENTRIES) return;
    for (const sk of sks) this.live.add(keyOf(pk, sk));
    this.complete.add(pk);
  }

  /** Whether every reservation row of `pk` is known (reservationsLoaded, and nothing cleared them since). */
  knowsAllReservations(pk: string): boolean {
    return this.complete.has(pk);
  }

  /** Whether the reservation row does not exist, for certain (false: not known). */
  isReservationAbsent(pk: string, sk: string): boolean {
    return this.complete.has(pk) && !this.live.has(keyOf(pk, sk));
  }

  /** The reservation row is deleted, or will be before any other statement runs. */
  reservationGone(pk: string, sk: string): void {
    this.live.delete(keyOf(pk, sk));
  }

  /** Whether the reservation row exists for certain (false: not known, read SQLite). */
  isReservationLive(pk: string, sk: string): boolean {
    return this.live.has(keyOf(pk, sk));
  }

  get size(): number {
    return this.entries.size;
  }
}
