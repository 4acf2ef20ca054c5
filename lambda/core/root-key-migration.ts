/**
 * Root-key migration: every sealed row of the cell whose data key is wrapped under a previous
 * root key gets it rewrapped under the current one with KMS ReEncrypt (no plaintext data key
 * reaches this code), and written back only if the row is still the one that was read.
 *
 * Resumable and idempotent: work goes page by page through a scan; a row already under the
 * current key is skipped, so a crashed run is finished by running it again (from its last
 * cursor, or from the start). Every rewrap is one audited change of its tenant.
 */
import { encryptionContextOf } from './canonical';
import type { SealedSecret } from './envelope';
import type { DataKeyRewrapper } from './ports';
import { sealedRowDigest } from './sealed-digest';
import type { TenantStore } from './store';

/** One page of sealed rows of the whole cell, in storage order. */
export interface SealedRowPage {
  readonly rows: readonly SealedSecret[];
  /** Rows that could not be parsed, or sit under a key that is not their identity's: never touched. */
  readonly unreadable: readonly { readonly pk: string; readonly sk: string }[];
  /** Where the next page starts; undefined after the last page. */
  readonly cursor?: string;
}

/** Reads every sealed row of the cell, a page at a time (a consistent scan of the tenants table). */
export interface SealedRowScanner {
  scanPage(cursor: string | undefined, limit: number): Promise<SealedRowPage>;
}

export interface RootKeyMigrationDeps {
  readonly region: string;
  readonly rows: SealedRowScanner;
  readonly store: Pick<TenantStore, 'rewrapSecret'>;
  readonly rewrapper: DataKeyRewrapper;
  /** The root keys rows are moved away from (the cell's previous root keys). */
  readonly sourceKeyArns: readonly string[];
}

export type RowFailureCode = 'invalid_ciphertext' | 'key_denied' | 'tenant_not_active' | 'wrong_region' | 'unreadable';

export interface MigrationProgress {
  /** Rows looked at in this call. */
  scanned: number;
  /** Rows moved to the current key in this call. */
  rewrapped: number;
  /** Rows found under the current key already (moved before, or sealed after the switch). */
  alreadyCurrent: number;
  /** Rows that changed between read and write (rotated, resealed, deleted): left as they are now. */
  raced: number;
  /** Rows under a key that is neither current nor previous (a tenant-held key): not the cell's to move. */
  otherKey: number;
  failed: number;
  /** Which rows failed and why; identities only, never key material. */
  failures: { tenant?: string; provider?: string; secret?: string; code: RowFailureCode }[];
  /** Pass it back to continue; absent when the scan reached the end. */
  cursor?: string;
  done: boolean;
}

export interface MigrateBatchOptions {
  readonly cursor?: string;
  /** Rows per scan page. */
  readonly pageSize: number;
  /** Stop starting new pages after this time (ms since epoch); the current page always finishes. */
  readonly stopAfter: number;
  /** Who asked (`iam:<ARN>`), recorded in each tenant's audit trail. */
  readonly actor: string;
  readonly now?: () => number;
}

/** Rewraps one page after another until the scan ends or `stopAfter` passes. */
export async function migrateBatch(deps: RootKeyMigrationDeps, opts: MigrateBatchOptions): Promise<MigrationProgress> {
  const now = opts.now ?? Date.now;
  const progress: MigrationProgress = { scanned: 0, rewrapped: 0, alreadyCurrent: 0, raced: 0, otherKey: 0, failed: 0, failures: [], done: false };
  let cursor = opts.cursor;
  do {
    const page = await deps.rows.scanPage(cursor, opts.pageSize);
    for (const u of page.unreadable) recordFailure(progress, { code: 'unreadable', ...identityOfKey(u) });
    progress.scanned += page.unreadable.length;
    await forEachLimited(page.rows, ROW_CONCURRENCY, (row) => migrateRow(deps, row, opts.actor, progress));
    cursor = page.cursor;
  } while (cursor !== undefined && now() < opts.stopAfter);
  progress.cursor = cursor;
  progress.done = cursor === undefined;
  return progress;
}

const ROW_CONCURRENCY = 8;
const MAX_LISTED_FAILURES = 100;

async function migrateRow(deps: RootKeyMigrationDeps, row: SealedSecret, actor: string, progress: MigrationProgress): Promise<void> {
  progress.scanned++;
  const target = deps.rewrapper.targetKeyArn;
  const who = { tenant: row.tenant, provider: row.provider, secret: row.secret };
  if (row.keyArn === target) {
    progress.alreadyCurrent++;
    return;
  }
  if (!deps.sourceKeyArns.includes(row.keyArn)) {
    progress.otherKey++;
    return;
  }
  if (row.region !== deps.region) return recordFailure(progress, { ...who, code: 'wrong_region' });
  let wrapped: Buffer;
  try {
    const context = encryptionContextOf({ app: 'sovereign-router', region: row.region, tenant: row.tenant, provider: row.provider, secret: row.secret, version: row.version });
    wrapped = await deps.rewrapper.rewrap(Buffer.from(row.wrappedKey, 'base64'), context, row.keyArn);
  } catch (err) {
    const reason = (err as { name?: string; reason?: string }).name === 'KeyServiceError' ? (err as { reason?: string }).reason : undefined;
    // A row whose wrapped key does not authenticate under its own identity was tampered with or
    // moved: reported, left alone (the router refuses it anyway). KMS unavailability stops the run.
    if (reason === 'invalid_ciphertext') return recordFailure(progress, { ...who, code: 'invalid_ciphertext' });
    if (reason === 'denied') return recordFailure(progress, { ...who, code: 'key_denied' });
    throw err;
  }
  const after: SealedSecret = { ...row, keyArn: target, wrappedKey: wrapped.toString('base64') };
  let applied: boolean;
  try {
    applied = await deps.store.rewrapSecret(row, after, {
      type: 'secret.rewrapped',
      actor,
      details: { provider: row.provider, name: row.secret, version: row.version, rowDigest: sealedRowDigest(after), reason: 'root-key-migration' },
    });
  } catch (err) {
    if ((err as { name?: string }).name === 'ConflictError') return recordFailure(progress, { ...who, code: 'tenant_not_active' });
    throw err;
  }
  if (applied) progress.rewrapped++;
  else progress.raced++;
}

function recordFailure(progress: MigrationProgress, failure: MigrationProgress['failures'][number]): void {
  progress.failed++;
  if (progress.failures.length < MAX_LISTED_FAILURES) progress.failures.push(failure);
}

/** `TENANT#<id>` / `SECRET#<provider>#<name>` back to an identity, for reporting an unreadable row. */
function identityOfKey(k: { pk: string; sk: string }): { tenant?: string; provider?: string; secret?: string } {
  const tenant = /^TENANT#(.{1,64})$/.exec(k.pk)?.[1];
  const m = /^SECRET#([^#]{1,128})#([^#]{1,128})$/.exec(k.sk);
  return { ...(tenant ? { tenant } : {}), ...(m ? { provider: m[1], secret: m[2] } : {}) };
}

async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** How many rows sit under which key: the operator's view of how far a migration is. */
export interface KeyInventory {
  readonly currentKeyArn: string;
  readonly current: number;
  readonly previous: Readonly<Record<string, number>>;
  /** Rows under keys that are neither (tenant-held keys), by count only. */
  readonly other: number;
  readonly unreadable: number;
  /** True when no row is left under a previous key: the previous keys can be retired. */
  readonly complete: boolean;
}

export async function keyInventory(deps: Pick<RootKeyMigrationDeps, 'rows' | 'rewrapper' | 'sourceKeyArns'>, pageSize: number): Promise<KeyInventory> {
  const previous: Record<string, number> = Object.fromEntries(deps.sourceKeyArns.map((k) => [k, 0]));
  let current = 0;
  let other = 0;
  let unreadable = 0;
  let cursor: string | undefined;
  do {
    const page = await deps.rows.scanPage(cursor, pageSize);
    unreadable += page.unreadable.length;
    for (const row of page.rows) {
      if (row.keyArn === deps.rewrapper.targetKeyArn) current++;
      else if (Object.hasOwn(previous, row.keyArn)) previous[row.keyArn]++;
      else other++;
    }
    cursor = page.cursor;
  } while (cursor !== undefined);
  const complete = Object.values(previous).every((n) => n === 0);
  return { currentKeyArn: deps.rewrapper.targetKeyArn, current, previous, other, unreadable, complete };
}
