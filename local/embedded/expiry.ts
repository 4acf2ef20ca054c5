/**
 * TTL for the embedded store, as DynamoDB's TTL does for the deployed tables: usage records,
 * rate windows, spend items, reservations and response-cache entries past their `expiresAt` are
 * deleted in small batches, at start and every few minutes, off the request path.
 *
 * Only the response cache has an expiry index. Usage records do without one (it cost pages on
 * every request): they are clustered by (tenant, sort key), the sort key starts with their start
 * time and their expiry is their start plus a fixed retention, so the sweep looks at each
 * tenant's oldest BATCH records and goes on while all of those were expired. A record with a
 * longer retention than a later one waits for it (late, never early). Counters (and the
 * reservations kept with them) are a small table (rate windows live ~20 minutes, one reservation
 * per request in flight), scanned whole.
 */
import { errorFields, Logger } from '../../lambda/core/logger';
import type { EmbeddedDatabase } from './database';

const INTERVAL_MS = 5 * 60_000;
const BATCH = 500;

/** The next tenant with usage records after ?1 (a seek on the clustered key, not a scan). */
const NEXT_USAGE_TENANT = 'SELECT tenant_id FROM usage WHERE tenant_id > ? ORDER BY tenant_id LIMIT 1';
/** Of one tenant's oldest BATCH records (sort key order: start time), those expired. */
const USAGE_SWEEP = `DELETE FROM usage WHERE tenant_id = ?1 AND sk IN (SELECT sk FROM (SELECT sk, expires_at FROM usage WHERE tenant_id = ?1 ORDER BY sk LIMIT ${BATCH}) WHERE expires_at < ?2)`;

const SWEEPS: readonly string[] = [
  `DELETE FROM counters WHERE (pk, sk) IN (SELECT pk, sk FROM counters WHERE expires_at < ? LIMIT ${BATCH})`,
  `DELETE FROM response_cache WHERE key IN (SELECT key FROM response_cache WHERE expires_at < ? LIMIT ${BATCH})`,
];

export function sweepExpired(db: EmbeddedDatabase, nowSec = Math.floor(Date.now() / 1000)): number {
  let deleted = 0;
  for (let tenant = db.one(NEXT_USAGE_TENANT, ['']); tenant; tenant = db.one(NEXT_USAGE_TENANT, [tenant.tenant_id as string])) {
    for (;;) {
      const n = db.run(USAGE_SWEEP, [tenant.tenant_id as string, nowSec]);
      deleted += n;
      if (n < BATCH) break;
    }
  }
  for (const sql of SWEEPS) {
    for (;;) {
      const n = db.run(sql, [nowSec]);
      deleted += n;
      if (n < BATCH) break;
    }
  }
  return deleted;
}
export function startExpirySweeper(db: EmbeddedDatabase, log: Logger): { stop(): void } {
  const sweep = () => {
    try {
      sweepExpired(db);
    } catch (err) {
      log.error('embedded store: expiry sweep failed', errorFields(err));
    }
  };
  sweep();
  const timer = setInterval(sweep, INTERVAL_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
