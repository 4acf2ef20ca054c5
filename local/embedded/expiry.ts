/**
 * TTL for the embedded store, as DynamoDB's TTL does for the deployed tables: usage records,
 * rate windows, spend items, reservations and response-cache entries past their `expiresAt` are
 * deleted in small batches, at start and every few minutes, off the request path.
 *
 * Only the response cache has an expiry index. Usage records do without one (it cost pages on
 * every request): their ids grow with time and their expiry is their start plus a fixed
 * retention, so the sweep looks at the oldest BATCH ids and goes on while all of those were
 * expired. A record that finished after a later-started one waits for it (minutes late, never
 * early). Counters and reservations are small tables (rate windows live ~20 minutes, one
 * reservation per request in flight), scanned whole.
 */
import { errorFields, Logger } from '../../lambda/core/logger';
import type { EmbeddedDatabase } from './database';

const INTERVAL_MS = 5 * 60_000;
const BATCH = 500;

const SWEEPS: readonly string[] = [
  `DELETE FROM usage WHERE id IN (SELECT id FROM (SELECT id, expires_at FROM usage ORDER BY id LIMIT ${BATCH}) WHERE expires_at < ?)`,
  `DELETE FROM counters WHERE (pk, sk) IN (SELECT pk, sk FROM counters WHERE expires_at < ? LIMIT ${BATCH})`,
  `DELETE FROM reservations WHERE (pk, sk) IN (SELECT pk, sk FROM reservations WHERE expires_at < ? LIMIT ${BATCH})`,
  `DELETE FROM response_cache WHERE key IN (SELECT key FROM response_cache WHERE expires_at < ? LIMIT ${BATCH})`,
];

export function sweepExpired(db: EmbeddedDatabase, nowSec = Math.floor(Date.now() / 1000)): number {
  let deleted = 0;
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
