/**
 * TTL for the embedded store, as DynamoDB's TTL does for the deployed tables: usage records,
 * rate windows, spend items, reservations and response-cache entries past their `expiresAt` are deleted in small batches
 * (indexed by expiry), at start and every few minutes, off the request path.
 */
import { errorFields, Logger } from '../../lambda/core/logger';
import type { EmbeddedDatabase } from './database';

const INTERVAL_MS = 5 * 60_000;
const BATCH = 500;

export function sweepExpired(db: EmbeddedDatabase, nowSec = Math.floor(Date.now() / 1000)): number {
  let deleted = 0;
  for (const [table, id] of [
    ['usage', 'id'],
    ['counters', 'pk, sk'],
    ['reservations', 'pk, sk'],
    ['response_cache', 'key'],
  ] as const) {
    for (;;) {
      const where = table === 'usage' ? 'id' : table === 'response_cache' ? 'key' : '(pk, sk)';
      const pick = id;
      const n = db.run(`DELETE FROM ${table} WHERE ${where} IN (SELECT ${pick} FROM ${table} WHERE expires_at < ? LIMIT ${BATCH})`, [nowSec]);
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
