/**
 * The governance ledger on the embedded database: one atomic write (a savepoint of the group
 * commit, database.ts) per ledger write. Conditions are checked on the rows as they are before
 * the write; the first failure undoes the whole write and is reported like a cancelled DynamoDB
 * transaction (every failed item).
 *
 * A reservation is on disk before `write` returns (the provider is called only after it; a
 * failed write fails it closed). For the only request in flight, when its outcome is known
 * without SQL (its ceilings pass through the counter mirror and its row is known not to exist), it
 * is journaled instead of committed: one write of its frame to the journal; its SQL runs later,
 * folded with its settle, before any statement that needs it (database.ts `journalReservation`,
 * `drain`). A settle,
 * release or reclaim joins the group commit of its
 * event-loop turn without waiting: the router writes the request's usage record right after its
 * settle and waits for that (embedded-router-store.ts), so both share one commit, before the
 * answer completes. If that commit fails, both are written again in one new group.
 *
 * Reservations are rows of the counters table (pk RESV#<tenant>, `body` set), next to the
 * tenant's counters, so a ledger write changes one page, not two (database.ts).
 *
 * Statements per write: a new reservation whose ceilings pass (read through the counter mirror)
 * goes in one statement with its counters (its row first; the changed-row count says whether it
 * was new). Otherwise: the reservation's insert or delete (its changed-row count is its
 * condition), one SELECT for the counters with ceilings the mirror does not hold, and one
 * multi-row upsert of the counters.
 */
import { errorFields } from '../../lambda/core/logger';
import { COUNTER_FIELDS, CounterField, CounterUpdate, CounterValues, GovernanceLedger, LedgerResult, LedgerWrite, ReservationRecord } from '../../lambda/core/governance/ledger';
import { LedgerGovernance, LedgerGovernanceOptions, microsOfUsd } from '../../lambda/core/governance/ledger-governance';
import { reservationPk } from '../../lambda/core/governance/keys';
import { usageRecordKey } from '../../lambda/core/router/usage-record';
import { isMirrored, valuesOfMirrored } from './counter-mirror';
import { EmbeddedDatabase, Row, textBytes } from './database';
import { parseJson } from './rows';
import { pushCounterParams, upsertSql } from './counter-sql';
import type { JournaledLedgerWrite, JournaledReservation } from './usage-journal';

class Refused extends Error {
  constructor(readonly result: Extract<LedgerResult, { ok: false }>) {
    super('ledger write refused');
  }
}

/**
 * A reservation and its counter updates in one statement (the common case: no ceiling refused):
 * the reservation's row first, then `n` counter rows. A reservation row that exists already is
 * left as it is (the update's WHERE refuses a row with a body), so the changed-row count is
 * n + 1 exactly when the reservation was new; any other count refuses the write (undone).
 */
const reserveSql = (() => {
  const counterCols = COUNTER_FIELDS.join(', ');
  const sets = COUNTER_FIELDS.map((f) => `${f} = CASE WHEN excluded.${f} IS NULL THEN ${f} ELSE coalesce(${f}, 0) + excluded.${f} END`).join(', ');
  const reservationRow = `(?, ?, ${COUNTER_FIELDS.map(() => 'NULL').join(', ')}, ?, NULL, ?, CAST(? AS TEXT))`;
  const counterRow = `(?, ?, ${COUNTER_FIELDS.map(() => '?').join(', ')}, ?, ?, NULL, NULL)`;
  const bySize = new Map<number, string>();
  return (n: number): string => {
    let sql = bySize.get(n);
    if (!sql) {
      sql =
        `INSERT INTO counters(pk, sk, ${counterCols}, expires_at, token_id, reclaim_after, body) VALUES ${[reservationRow, ...Array.from({ length: n }, () => counterRow)].join(', ')} ` +
        `ON CONFLICT(pk, sk) DO UPDATE SET ${sets}, expires_at = coalesce(expires_at, excluded.expires_at), token_id = coalesce(excluded.token_id, token_id) WHERE excluded.body IS NULL`;
      bySize.set(n, sql);
    }
    return sql;
  };
})();

/** Times a settle, release or reclaim is written again after its group's commit failed. */
const REWRITES = 2;

export class EmbeddedGovernanceLedger implements GovernanceLedger {

  /** @param onLost told about a settle, release or reclaim that could not be written again after its group failed */
  constructor(
    private readonly db: EmbeddedDatabase,
    private readonly onLost?: (err: unknown) => void,
  ) {}

  async write(w: LedgerWrite): Promise<LedgerResult> {
    const put = this.db.canJournalReservation ? this.journalableReservation(w) : undefined;
    if (put && this.db.journalReservation(put)) {
      // On disk; the mirror holds it from now on (its SQL runs later: database.ts `drain`).
      this.db.counters.forget(put.put.pk, put.put.sk);
      this.db.counters.applied(w.counters);
      this.db.counters.reservationPut(put.put.pk, put.put.sk);
      return { ok: true };
    }
    const journaled = this.db.journaling ? journalable(w, this.db) : undefined;
    if (journaled) {
      // Its only condition (the reservation row) holds and nothing can delete that row before its
      // SQL runs: journaled with the request's usage record, applied before any other statement.
      this.db.counters.applied(w.counters);
      this.db.counters.reservationGone(journaled.reservation.pk, journaled.reservation.sk);
      this.db.deferredApply(journaled);
      return { ok: true };
    }
    try {
      this.db.deferred(() => this.apply(w));
    } catch (err) {
      if (err instanceof Refused) return err.result;
      throw err;
    }
    if (w.reservation && 'put' in w.reservation) {
      await this.db.durableNow();
    } else {
      this.rewriteIfLost(w, REWRITES);
    }
    return { ok: true };
  }

  /**
   * A settle, release or reclaim is not waited for (it shares the commit of the usage record the
   * router writes next, which is), but it must not be lost with a group whose commit failed: it
   * is written again at once, when that failure is reported, so it joins the same new group as
   * the usage record's own retry (embedded-router-store.ts). The failed group was rolled back, so
   * the write is applied once; its conditions are checked again (a refusal is final).
   */
  private rewriteIfLost(w: LedgerWrite, attemptsLeft: number): void {
    this.db.durable().catch((err: unknown) => {
      if (attemptsLeft <= 0) return this.onLost?.(err);
      try {
        this.db.deferred(() => this.apply(w));
      } catch (again) {
        if (!(again instanceof Refused)) this.onLost?.(again);
        return;
      }
      this.rewriteIfLost(w, attemptsLeft - 1);
    });
  }

  async expiredReservations(tenantId: string, nowSec: number, limit: number): Promise<ReservationRecord[]> {
    return this.db
      .all('SELECT body FROM counters WHERE pk = ? AND reclaim_after < ? AND body IS NOT NULL ORDER BY sk LIMIT ?', [reservationPk(tenantId), nowSec, limit])
      .flatMap((r) => {
        try {
          const rec = parseJson<ReservationRecord>(r.body);
          return rec && typeof rec.amountMicros === 'number' && typeof rec.period === 'string' && typeof rec.tokenKey === 'string' ? [rec] : [];
        } catch {
          return []; // a malformed row is skipped, as the DynamoDB adapter skips one
        }
      });
  }

  async recordedCostMicros(r: ReservationRecord): Promise<number> {
    if (!r.createdAt) return 0;
    const key = usageRecordKey({ tenantId: r.tenantId, at: r.createdAt, requestId: r.key.sk });
    const row = this.db.one('SELECT body FROM usage WHERE tenant_id = ? AND sk = ?', [r.tenantId, key.sk]);
    try {
      return microsOfUsd(parseJson<{ costUsd?: unknown }>(row?.body)?.costUsd);
    } catch {
      return 0; // a malformed record names no cost
    }
  }

  /**
   * The journal form of a new reservation whose outcome is known now: its counter updates are
   * what the journal holds exactly (safe integers of counter fields), its ceilings pass through
   * the counter mirror, and its row is known not to exist. Undefined otherwise: it runs at once,
   * as before (and a refusal is reported from there).
   */
  private journalableReservation(w: LedgerWrite): Omit<JournaledReservation, 'seq'> | undefined {
    const r = w.reservation;
    if (!r || !('put' in r) || w.counters.length === 0 || !exactCounters(w.counters) || !apartFromReservations(w.counters, r.put.key.pk)) return undefined;
    const p = r.put;
    if (!Number.isSafeInteger(p.expiresAt) || !Number.isSafeInteger(p.reclaimAfter)) return undefined;
    if (this.failedCeilings(w.counters).length > 0 || !this.db.reservationAbsent(p.key.pk, p.key.sk)) return undefined;
    return { put: { pk: p.key.pk, sk: p.key.sk, expiresAt: p.expiresAt, reclaimAfter: p.reclaimAfter, body: JSON.stringify(p) }, counters: w.counters };
  }

  private apply(w: LedgerWrite): void {
    const r = w.reservation;
    // A new reservation whose ceilings pass (read through the mirror): one statement for all.
    if (r && 'put' in r && w.counters.length > 0 && this.failedCeilings(w.counters).length === 0) {
      const p = r.put;
      this.db.counters.forget(p.key.pk, p.key.sk);
      const params: (string | number | null | Uint8Array)[] = [p.key.pk, p.key.sk, p.expiresAt, p.reclaimAfter, textBytes(JSON.stringify(p))];
      for (const u of w.counters) pushCounterParams(params, u);
      if (this.db.runMirrored(reserveSql(w.counters.length), params) !== w.counters.length + 1) {
        throw new Refused({ ok: false, reservationFailed: true, failed: [] });
      }
      this.db.counters.applied(w.counters);
      this.db.counters.reservationPut(p.key.pk, p.key.sk);
      return;
    }
    // The reservation first: its changed-row count is its condition (a refused write is undone).
    let reservationFailed = false;
    if (r && 'put' in r) {
      const p = r.put;
      this.db.counters.forget(p.key.pk, p.key.sk);
      const failedNow =
        this.db.runMirrored('INSERT INTO counters(pk, sk, reclaim_after, expires_at, body) VALUES (?, ?, ?, ?, CAST(? AS TEXT)) ON CONFLICT(pk, sk) DO NOTHING', [
          p.key.pk,
          p.key.sk,
          p.reclaimAfter,
          p.expiresAt,
          textBytes(JSON.stringify(p)),
        ]) === 0;
      reservationFailed = failedNow;
      // Known to exist only once the whole write ran (a refusal below undoes it and clears this).
      if (!failedNow) this.db.counters.reservationPut(p.key.pk, p.key.sk);
    } else if (r) {
      this.db.counters.forget(r.delete.pk, r.delete.sk);
      this.db.counters.reservationGone(r.delete.pk, r.delete.sk);
      const changed =
        r.reclaimableAt === undefined
          ? this.db.runMirrored('DELETE FROM counters WHERE pk = ? AND sk = ? AND body IS NOT NULL', [r.delete.pk, r.delete.sk])
          : this.db.runMirrored('DELETE FROM counters WHERE pk = ? AND sk = ? AND body IS NOT NULL AND reclaim_after < ?', [r.delete.pk, r.delete.sk, r.reclaimableAt]);
      reservationFailed = changed === 0;
    }
    const failed = this.failedCeilings(w.counters);
    if (reservationFailed || failed.length > 0) throw new Refused({ ok: false, reservationFailed, failed });
    if (w.counters.length === 0) return;
    const params: (string | number | null)[] = [];
    for (const u of w.counters) pushCounterParams(params, u);
    this.db.runMirrored(upsertSql(w.counters.length), params);
    // Only after SQLite ran it; a failure after this point undoes the write and clears the mirror.
    this.db.counters.applied(w.counters);
  }

  /** Updates whose ceilings the stored counters exceed, read through the counter mirror (at most one SELECT). */
  private failedCeilings(counters: readonly CounterUpdate[]): { index: number; item?: CounterValues }[] {
    const checked: { u: CounterUpdate; index: number }[] = [];
    for (let index = 0; index < counters.length; index++) if (counters[index].ceilings) checked.push({ u: counters[index], index });
    if (checked.length === 0) return [];
    const rows = this.db.counterRows(checked.map(({ u }) => u.key));
    const failed: { index: number; item?: CounterValues }[] = [];
    for (let i = 0; i < checked.length; i++) {
      const { u, index } = checked[i];
      const row = rows[i];
      if (!row) continue;
      const values = isMirrored(row) ? valuesOfMirrored(row) : valuesOf(row);
      const over = (Object.entries(u.ceilings!) as [CounterField, number][]).some(([f, max]) => {
        const v = values[f];
        return v !== undefined && v > max;
      });
      if (over) failed.push({ index, item: values });
    }
    return failed;
  }
}

/**
 * The journal form of a settle or release whose reservation row exists for certain (put by this
 * process, nothing deleted it since): its outcome is known now, so it needs no SQL before the
 * answer. Undefined for any other write (a put, a reclaim's timed condition, ceilings, counters
 * without a reservation, or a reservation not known here): those run at once, as before. The
 * write itself is the journal form (no copy); it is checked to hold only what the journal's
 * reader accepts (safe integers of counter fields), since a frame it refused would end the journal.
 */
function journalable(w: LedgerWrite, db: EmbeddedDatabase): JournaledLedgerWrite | undefined {
  const r = w.reservation;
  if (!r || !('delete' in r) || r.reclaimableAt !== undefined) return undefined;
  if (w.counters.some((u) => u.ceilings) || !exactCounters(w.counters) || !apartFromReservations(w.counters, r.delete.pk)) return undefined;
  if (!db.counters.isReservationLive(r.delete.pk, r.delete.sk)) return undefined;
  return { reservation: r.delete, counters: w.counters };
}

/**
 * Counter updates on keys apart from the tenant's reservation rows: folded journaled writes apply
 * row inserts and deletes apart from counter updates (ledger-batch.ts), which is the same as one
 * by one only when no update lands on a reservation row (governance never sends one; a caller that
 * does is written at once, as before).
 */
function apartFromReservations(counters: readonly CounterUpdate[], reservationPk: string): boolean {
  for (const u of counters) if (u.key.pk === reservationPk) return false;
  return true;
}

/** Counter updates the journal holds exactly: safe integers of counter fields, a safe-integer expiry. */
function exactCounters(counters: readonly CounterUpdate[]): boolean {
  for (const u of counters) {
    if (u.expiresAt !== undefined && !Number.isSafeInteger(u.expiresAt)) return false;
    for (const f in u.add) {
      const v = u.add[f as CounterField];
      if (v !== undefined && (!Number.isSafeInteger(v) || !(COUNTER_FIELDS as readonly string[]).includes(f))) return false;
    }
  }
  return true;
}

/** A row's counter fields (absent when NULL); a value that is not a number compares like Number() of it. */
function valuesOf(row: Row): CounterValues {
  const out: CounterValues = {};
  for (const f of COUNTER_FIELDS) if (row[f] !== null && row[f] !== undefined) out[f] = Number(row[f]);
  return out;
}

/** Governance on the embedded database: the shared core over the embedded ledger. */
export class EmbeddedGovernance extends LedgerGovernance {
  constructor(db: EmbeddedDatabase, opts: LedgerGovernanceOptions = {}) {
    const log = opts.log;
    super(new EmbeddedGovernanceLedger(db, log ? (err) => log.error('governance: a ledger write was lost with its failed group commit; the reservation is reclaimed at the recorded cost', errorFields(err)) : undefined), opts);
  }
}
