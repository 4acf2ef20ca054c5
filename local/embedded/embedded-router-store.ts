/**
 * RouterStore on the embedded database: the request's token, tenant, default secrets and
 * governance counters by primary key (a handful of indexed point reads, no scan), and usage
 * records appended one row each, outside any transaction.
 */
import { parseSealedSecret, SealedSecret } from '../../lambda/core/envelope';
import { counterId, CounterKey } from '../../lambda/core/router/governance';
import type { RequestContextRead, RouterStore } from '../../lambda/core/router/router-store';
import { secretKeyOf } from '../../lambda/core/router/router-store';
import { UsageRecord, usageRecordKey } from '../../lambda/core/router/usage-record';
import type { TenantRecord, TokenRecord } from '../../lambda/core/tenant-model';
import type { EmbeddedDatabase } from './database';
import { counterItemOf, parseJson } from './rows';

/** Usage records are kept for 400 days, as in the deployed cell. */
export const USAGE_RETENTION_SECONDS = 400 * 24 * 3600;

export class EmbeddedRouterStore implements RouterStore {
  constructor(private readonly db: EmbeddedDatabase) {}

  async loadRequestContext(
    verifier: string,
    tenantId: string,
    providers: readonly string[],
    counterKeys: readonly CounterKey[] = [],
  ): Promise<RequestContextRead> {
    const token = parseJson<TokenRecord>(this.db.one('SELECT body FROM tokens WHERE verifier = ?', [verifier])?.body);
    const tenant = parseJson<TenantRecord>(this.db.one('SELECT body FROM tenants WHERE tenant_id = ?', [tenantId])?.body);
    const secrets = new Map<string, SealedSecret>();
    for (const provider of providers) {
      const row = this.db.one("SELECT body FROM secrets WHERE tenant_id = ? AND provider = ? AND name = 'default'", [tenantId, provider]);
      if (!row) continue;
      const s = parseSealedSecret(parseJson(row.body));
      secrets.set(secretKeyOf(s.provider, s.secret), s);
    }
    const counters = new Map<string, Record<string, unknown>>();
    for (const k of counterKeys) {
      const row = this.db.one('SELECT * FROM counters WHERE pk = ? AND sk = ?', [k.pk, k.sk]);
      if (row) counters.set(counterId(k), counterItemOf(row));
    }
    return { token, tenant, secrets, counters };
  }

  async getSecret(tenantId: string, provider: string, name: string): Promise<SealedSecret | undefined> {
    const row = this.db.one('SELECT body FROM secrets WHERE tenant_id = ? AND provider = ? AND name = ?', [tenantId, provider, name]);
    return row ? parseSealedSecret(parseJson(row.body)) : undefined;
  }

  async putUsage(record: UsageRecord): Promise<void> {
    const expiresAt = Math.floor(Date.parse(record.at) / 1000) + USAGE_RETENTION_SECONDS;
    // Keyed like the DynamoDB item (tenant, `<at>#<requestId>`): a second write of one key replaces it.
    this.db.run('INSERT OR REPLACE INTO usage(tenant_id, sk, at, request_id, expires_at, body) VALUES (?, ?, ?, ?, ?, ?)', [
      record.tenantId,
      usageRecordKey(record).sk,
      record.at,
      record.requestId,
      expiresAt,
      JSON.stringify(record),
    ]);
  }
}
