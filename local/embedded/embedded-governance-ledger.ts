/**
 * The governance ledger on the embedded database: one SQLite transaction per ledger write.
 * Conditions are checked on the rows as they are before the write; the first failure rolls the
 * whole write back and is reported like a cancelled DynamoDB transaction (every failed item).
 */
import { COUNTER_FIELDS, CounterField, CounterUpdate, CounterValues, GovernanceLedger, LedgerResult, LedgerWrite, ReservationRecord } from '../../lambda/core/governance/ledger';
import { LedgerGovernance, LedgerGovernanceOptions, microsOfUsd } from '../../lambda/core/governance/ledger-governance';
import { reservationPk } from '../../lambda/core/governance/keys';
import { usageRecordKey } from '../../lambda/core/router/usage-record';
import type { EmbeddedDatabase, Row } from './database';
import { parseJson } from './rows';

class Refused extends Error {
  constructor(readonly result: Extract<LedgerResult, { ok: false }>) {
    super('ledger write refused');
  }
}

const UPSERT = (() => {
  const cols = COUNTER_FIELDS.join(', ');
  const sets = COUNTER_FIELDS.map((f) => `${f} = CASE WHEN excluded.${f} IS NULL THEN ${f} ELSE coalesce(${f}, 0) + excluded.${f} END`).join(', ');
  return (
    `INSERT INTO counters(pk, sk, ${cols}, expires_at, token_id) VALUES (?, ?, ${COUNTER_FIELDS.map(() => '?').join(', ')}, ?, ?) ` +
    `ON CONFLICT(pk, sk) DO UPDATE SET ${sets}, expires_at = coalesce(expires_at, excluded.expires_at), token_id = coalesce(excluded.token_id, token_id)`
  );
})();

export class EmbeddedGovernanceLedger implements GovernanceLedger {
  constructor(private readonly db: EmbeddedDatabase) {}

  async write(w: LedgerWrite): Promise<LedgerResult> {
    try {
      this.db.transaction(() => this.apply(w));
      return { ok: true };
    } catch (err) {
      if (err instanceof Refused) return err.result;
      throw err;
    }
  }

  async expiredReservations(tenantId: string, nowSec: number, limit: number): Promise<ReservationRecord[]> {
    return this.db
      .all('SELECT body FROM reservations WHERE pk = ? AND reclaim_after < ? ORDER BY sk LIMIT ?', [reservationPk(tenantId), nowSec, limit])
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

  private apply(w: LedgerWrite): void {
    let reservationFailed = false;
    const r = w.reservation;
    if (r && 'put' in r) {
      reservationFailed = this.db.one('SELECT 1 AS x FROM reservations WHERE pk = ? AND sk = ?', [r.put.key.pk, r.put.key.sk]) !== undefined;
    } else if (r) {
      const row = this.db.one('SELECT reclaim_after FROM reservations WHERE pk = ? AND sk = ?', [r.delete.pk, r.delete.sk]);
      reservationFailed = !row || (r.reclaimableAt !== undefined && !(Number(row.reclaim_after) < r.reclaimableAt));
    }
    const failed: { index: number; item?: CounterValues }[] = [];
    w.counters.forEach((u, index) => {
      if (!u.ceilings) return;
      const row = this.db.one('SELECT * FROM counters WHERE pk = ? AND sk = ?', [u.key.pk, u.key.sk]);
      const over = (Object.entries(u.ceilings) as [CounterField, number][]).some(([f, max]) => row && row[f] !== null && Number(row[f]) > max);
      if (over) failed.push({ index, item: row ? valuesOf(row) : undefined });
    });
    if (reservationFailed || failed.length > 0) throw new Refused({ ok: false, reservationFailed, failed });

    if (r && 'put' in r) {
      this.db.run('INSERT INTO reservations(pk, sk, reclaim_after, expires_at, body) VALUES (?, ?, ?, ?, ?)', [
        r.put.key.pk,
        r.put.key.sk,
        r.put.reclaimAfter,
        r.put.expiresAt,
        JSON.stringify(r.put),
      ]);
    } else if (r) {
      this.db.run('DELETE FROM reservations WHERE pk = ? AND sk = ?', [r.delete.pk, r.delete.sk]);
    }
    for (const u of w.counters) this.upsert(u);
  }

  private upsert(u: CounterUpdate): void {
    this.db.run(UPSERT, [u.key.pk, u.key.sk, ...COUNTER_FIELDS.map((f) => u.add[f] ?? null), u.expiresAt ?? null, u.tokenId ?? null]);
  }
}

function valuesOf(row: Row): CounterValues {
  const out: CounterValues = {};
  for (const f of COUNTER_FIELDS) if (row[f] !== null && row[f] !== undefined) out[f] = Number(row[f]);
  return out;
}

/** Governance on the embedded database: the shared core over the embedded ledger. */
export class EmbeddedGovernance extends LedgerGovernance {
  constructor(db: EmbeddedDatabase, opts: LedgerGovernanceOptions = {}) {
    super(new EmbeddedGovernanceLedger(db), opts);
  }
}
