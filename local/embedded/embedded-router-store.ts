/**
 * RouterStore on the embedded database: the request's token, tenant, default secrets and
 * governance counters by primary key (point reads, no scan; token, tenant, secret and erasure-key
 * rows through the database's exact row cache, row-cache.ts), and usage records appended one row
 * each in the group commit (database.ts), awaited: the record, and the settle written just before
 * it, are on disk when putUsage returns. Rows are returned unparsed (the router authenticates
 * before it parses anything); a body that is not a JSON object comes back as an empty item,
 * which the router's parsers refuse like any other malformed row. A cached row is parsed once
 * into a deeply frozen object that every request reading it gets until the row changes
 * (row-cache.ts, lambda/core/shared-rows.ts): nothing a caller could change, and the router's
 * parsers recognise it without parsing or serializing it again.
 */
import { counterId, CounterKey } from '../../lambda/core/router/governance';
import type { RawItem, RequestContextRead, RouterStore } from '../../lambda/core/router/router-store';
import { UsageRecord, usageRecordKey } from '../../lambda/core/router/usage-record';
import { secretSlotOf } from '../../lambda/core/tenant-model';
import type { VersionedVerifier } from '../../lambda/core/pepper-ring';
import { moveTokenVerifierRow } from './embedded-token-verifier';
import { isMirrored, itemOfMirrored } from './counter-mirror';
import { EmbeddedDatabase, textBytes } from './database';
import type { UsageRow } from './usage-journal';
import { counterItemOf } from './rows';

/** Usage records are kept for 400 days, as in the deployed cell. */
export const USAGE_RETENTION_SECONDS = 400 * 24 * 3600;
/** Times a usage record is written again after its group's commit failed. */
const USAGE_REWRITES = 2;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Row-cache keys of one tenant (see keysOf). */
interface TenantKeys {
  readonly providers: readonly string[];
  readonly tenant: string;
  readonly erasure: string;
  readonly defaultSecrets: readonly string[];
  readonly defaultSlots: readonly string[];
}
const MAX_TENANT_KEYS = 1_000;

export class EmbeddedRouterStore implements RouterStore {
  private readonly tenantKeys = new Map<string, TenantKeys>();

  constructor(private readonly db: EmbeddedDatabase) {}

  async loadRequestContext(
    verifier: string,
    tenantId: string,
    providers: readonly string[],
    counterKeys: readonly CounterKey[] = [],
    previousVerifier?: string,
  ): Promise<RequestContextRead> {
    return this.loadRequestContextNow(verifier, tenantId, providers, counterKeys, previousVerifier);
  }

  /** The same read without a promise (router-store.ts): every row is read in this process. */
  loadRequestContextNow(
    verifier: string,
    tenantId: string,
    providers: readonly string[],
    counterKeys: readonly CounterKey[] = [],
    previousVerifier?: string,
  ): RequestContextRead {
    const keys = this.keysOf(tenantId, providers);
    const token = this.tokenItem(verifier);
    const previousToken = previousVerifier === undefined ? undefined : this.tokenItem(previousVerifier);
    const tenant = this.cached(keys.tenant, 'SELECT body FROM tenants WHERE tenant_id = ?', [tenantId]);
    // Keyed by the key each row was read under, never by what the row claims to be.
    const secrets = new Map<string, RawItem>();
    for (let i = 0; i < providers.length; i++) {
      const provider = providers[i];
      const item = this.cached(keys.defaultSecrets[i], "SELECT body FROM secrets WHERE tenant_id = ? AND provider = ? AND name = 'default'", [tenantId, provider]);
      if (item !== undefined) secrets.set(keys.defaultSlots[i], item);
    }
    const erasureKey = this.cached(keys.erasure, 'SELECT body FROM erasure_keys WHERE tenant_id = ?', [tenantId]);
    // Through the exact counter mirror (at most one statement, for the keys it does not know);
    // each found row is keyed by the key it was asked under, as a fresh object.
    const counters = new Map<string, Record<string, unknown>>();
    if (counterKeys.length > 0) {
      const rows = this.db.counterRows(counterKeys);
      for (let i = 0; i < counterKeys.length; i++) {
        const row = rows[i];
        const k = counterKeys[i];
        if (row) counters.set(counterId(k), isMirrored(row) ? itemOfMirrored(k.pk, k.sk, row) : counterItemOf(row));
      }
    }
    // Built by assignment: a spread of a temporary object per optional member was an allocation each.
    const read: Mutable<RequestContextRead> = { token, tenant, secrets, counters };
    if (previousToken) read.previousToken = previousToken;
    if (erasureKey) read.erasureKey = erasureKey;
    return read;
  }

  /** On-use pepper upgrade (authenticate.ts): the same record under its new verifier. */
  async moveTokenVerifier(item: Readonly<Record<string, unknown>>, to: VersionedVerifier): Promise<boolean> {
    return moveTokenVerifierRow(this.db, item, to);
  }

  async getSecret(tenantId: string, provider: string, name: string): Promise<RawItem | undefined> {
    return this.cached(keyOf('secret', tenantId, provider, name), 'SELECT body FROM secrets WHERE tenant_id = ? AND provider = ? AND name = ?', [tenantId, provider, name]);
  }

  async putUsage(record: UsageRecord): Promise<void> {
    const expiresAt = Math.floor(Date.parse(record.at) / 1000) + USAGE_RETENTION_SECONDS;
    const row: UsageRow = [record.tenantId, usageRecordKey(record).sk, record.at, record.requestId, expiresAt, textBytes(JSON.stringify(record))];
    // A group whose commit failed was rolled back: the record is written again at once, in the
    // new group the request's settle joins again too (embedded-governance-ledger.ts). The local
    // gateway holds the answer's last byte until this returns.
    for (let attempt = 1; ; attempt++) {
      // Keyed like the DynamoDB item (tenant, `<at>#<requestId>`): a second write of one key replaces it.
      this.db.deferredUsage(row);
      try {
        await this.db.durableNow();
        return;
      } catch (err) {
        if (attempt > USAGE_REWRITES) throw err;
      }
    }
  }

  /**
   * The row-cache keys of a tenant's rows for one provider list (the router passes the same list
   * on every request), made once per tenant: strings, not rows, so they never go stale. Bounded:
   * emptied when full.
   */
  private keysOf(tenantId: string, providers: readonly string[]): TenantKeys {
    let keys = this.tenantKeys.get(tenantId);
    if (keys === undefined || keys.providers !== providers) {
      keys = {
        providers,
        tenant: keyOf('tenant', tenantId),
        erasure: keyOf('erasure', tenantId),
        defaultSecrets: providers.map((p) => keyOf('secret', tenantId, p, 'default')),
        defaultSlots: providers.map((p) => secretSlotOf(p, 'default')),
      };
      if (this.tenantKeys.size >= MAX_TENANT_KEYS) this.tenantKeys.clear();
      this.tenantKeys.set(tenantId, keys);
    }
    return keys;
  }

  private tokenItem(verifier: string): RawItem | undefined {
    return this.cached(keyOf('token', verifier), 'SELECT body FROM tokens WHERE verifier = ?', [verifier]);
  }

  /** A row's item (the shared parse of its body) through the row cache, keyed unambiguously by table and key. */
  private cached(key: string, sql: string, params: readonly string[]): RawItem | undefined {
    return this.db.rows.item(
      key,
      () => {
        const body = this.db.one(sql, params)?.body;
        return body === undefined || body === null ? undefined : String(body);
      },
      rawItem,
    );
  }
}

/** An unambiguous key of strings (each length-prefixed), whatever characters they hold. */
function keyOf(...parts: string[]): string {
  let key = '';
  for (const p of parts) key += `${p.length}:${p}`;
  return key;
}

/** A stored JSON body as a fresh, unvalidated item; {} for a body that is not a JSON object. */
function rawItem(body: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(body);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
