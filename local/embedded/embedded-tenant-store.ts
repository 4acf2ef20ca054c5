/**
 * TenantStore on the embedded SQLite database: the same semantics as DynamoTenantStore (the
 * tenant-store contract suite holds both to them). Every change runs in one transaction with its
 * audit event and the move of the tenant's audit head, and requires the tenant to be active.
 */
import { AUDIT_GENESIS, AuditEvent, AuditEventInput, AuditTrail } from '../../lambda/core/audit-chain';
import { parseSealedSecret, SealedSecret } from '../../lambda/core/envelope';
import type { Clock } from '../../lambda/core/ports';
import { systemClock } from '../../lambda/core/ports';
import { checkFactorChangeFinish, checkFactorChangeStart, checkSecretWrite, checkTokenWrite, withTokenFactor } from '../../lambda/core/factor-generations';
import { CELL_AUDIT_ID, cellChainRecord, ConflictError, LastAdminTokenError, OffboardCounts, SecretWrite, TenantStore, TokenFactorUpdate, type TokenInventoryRow } from '../../lambda/core/store';
import {
  secretSlotOf,
  type FactorChange,
  type Limits,
  type SecretVersionEntry,
  type TenantMode,
  type TenantPolicy,
  type TenantRecord,
  type TokenRecord,
} from '../../lambda/core/tenant-model';
import type { VersionedVerifier } from '../../lambda/core/pepper-ring';
import { moveTokenVerifierRow } from './embedded-token-verifier';
import { erasureKeyFromItem, erasureKeyItemOf } from '../../lambda/core/erasure-key';
import type { EmbeddedDatabase, Row } from './database';
import { counterItemOf, parseJson } from './rows';

export class EmbeddedTenantStore implements TenantStore {
  constructor(
    private readonly db: EmbeddedDatabase,
    /** Seals each event with the audit key and anchors it once committed. */
    private readonly trail: AuditTrail,
    private readonly clock: Clock = systemClock,
  ) {}

  async getTenant(tenantId: string): Promise<TenantRecord | undefined> {
    return this.tenant(tenantId);
  }

  async createTenant(tenant: TenantRecord, firstToken: TokenRecord, audit: AuditEventInput): Promise<void> {
    const event = await this.trail.seal(tenant.tenantId, { seq: 0, mac: AUDIT_GENESIS }, audit, this.clock.now());
    this.db.transaction(() => {
      if (this.tenant(tenant.tenantId) || this.db.one('SELECT 1 AS x FROM tokens WHERE verifier = ?', [firstToken.verifier])) {
        throw new ConflictError(`Tenant '${tenant.tenantId}' already exists.`);
      }
      this.writeTenant({ ...tenant, auditSeq: event.seq, auditHead: event.mac });
      this.insertToken(firstToken);
      this.insertAudit(event);
    });
    await this.trail.anchor(event);
  }

  async updatePolicy(tenantId: string, policy: TenantPolicy, audit: AuditEventInput): Promise<TenantRecord> {
    const now = this.clock.now().toISOString();
    return this.withAudit(tenantId, audit, (t) => ({ ...t, policy, updatedAt: now }));
  }

  async getToken(verifier: string): Promise<TokenRecord | undefined> {
    return parseJson<TokenRecord>(this.db.one('SELECT body FROM tokens WHERE verifier = ?', [verifier])?.body);
  }

  /** On-use pepper upgrade (authenticate.ts): the same record under its new verifier. */
  async moveTokenVerifier(item: Readonly<Record<string, unknown>>, to: VersionedVerifier): Promise<boolean> {
    return moveTokenVerifierRow(this.db, item, to);
  }

  async listTokens(tenantId: string): Promise<TokenRecord[]> {
    return this.tokensOf(tenantId);
  }

  async putToken(token: TokenRecord, audit: AuditEventInput): Promise<void> {
    await this.withAudit(token.tenantId, audit, (t) => {
      if (this.db.one('SELECT 1 AS x FROM tokens WHERE verifier = ?', [token.verifier])) throw new ConflictError('A token with this verifier already exists.');
      checkTokenWrite(t, token);
      this.insertToken(token);
      return t;
    });
  }

  async deleteToken(tenantId: string, tokenId: string, audit: AuditEventInput): Promise<boolean> {
    // A token that is not there is "false" whatever the tenant's state (as in DynamoDB).
    if (!this.hasToken(tenantId, tokenId)) return false;
    return this.withAuditOrMissing(tenantId, audit, () => {
      const tokens = this.tokensOf(tenantId);
      const token = tokens.find((t) => t.tokenId === tokenId);
      if (!token) return false;
      if (token.role === 'tenant-admin' && !tokens.some((t) => t.role === 'tenant-admin' && t.tokenId !== tokenId)) throw new LastAdminTokenError();
      this.db.run('DELETE FROM tokens WHERE verifier = ?', [token.verifier]);
      return true;
    });
  }

  async replaceToken(next: TokenRecord, previousTokenId: string, audit: AuditEventInput): Promise<boolean> {
    if (!this.hasToken(next.tenantId, previousTokenId)) return false;
    return this.withAuditOrMissing(next.tenantId, audit, (tenant) => {
      const previous = this.tokensOf(next.tenantId).find((t) => t.tokenId === previousTokenId);
      if (!previous) return false;
      checkTokenWrite(tenant, next);
      if (this.db.one('SELECT 1 AS x FROM tokens WHERE verifier = ?', [next.verifier])) throw new ConflictError('A token with this verifier already exists.');
      this.db.run('DELETE FROM tokens WHERE verifier = ?', [previous.verifier]);
      this.insertToken(next);
      return true;
    });
  }

  async updateTokenLimits(tenantId: string, tokenId: string, limits: Limits, audit: AuditEventInput): Promise<TokenRecord | undefined> {
    if (!this.hasToken(tenantId, tokenId)) return undefined;
    let updated: TokenRecord | undefined;
    await this.withAuditOrMissing(tenantId, audit, () => {
      const token = this.tokensOf(tenantId).find((t) => t.tokenId === tokenId);
      if (!token) return false;
      const { limits: _old, ...rest } = token;
      updated = Object.keys(limits).length === 0 ? rest : { ...rest, limits };
      this.db.run('UPDATE tokens SET body = ? WHERE verifier = ?', [JSON.stringify(updated), token.verifier]);
      return true;
    });
    return updated;
  }

  async getCounterItems(keys: readonly { readonly pk: string; readonly sk: string }[]): Promise<Map<string, Record<string, unknown>>> {
    const out = new Map<string, Record<string, unknown>>();
    for (const k of keys) {
      const row = this.db.one('SELECT * FROM counters WHERE pk = ? AND sk = ?', [k.pk, k.sk]);
      if (row) out.set(`${k.pk}|${k.sk}`, counterItemOf(row));
    }
    return out;
  }

  async getSecret(tenantId: string, provider: string, name: string): Promise<SealedSecret | undefined> {
    const row = this.db.one('SELECT body FROM secrets WHERE tenant_id = ? AND provider = ? AND name = ?', [tenantId, provider, name]);
    return row ? parseSealedSecret(parseJson(row.body)) : undefined;
  }

  async listSecrets(tenantId: string): Promise<SealedSecret[]> {
    return this.db.all('SELECT body FROM secrets WHERE tenant_id = ? ORDER BY provider, name', [tenantId]).map((r) => parseSealedSecret(parseJson(r.body)));
  }

  /**
   * The sealed row and META's entry for it in one transaction (with the audit event). META, not
   * the row, says what is current: a create needs neither an entry nor a row, a rotation needs
   * META's entry at `expectedVersion` and overwrites whatever row is there.
   */
  async putSecret(write: SecretWrite, audit: AuditEventInput): Promise<void> {
    const { sealed: secret, current, expectedVersion } = write;
    if (current.version !== secret.version) throw new Error('putSecret: META entry and row disagree on the version');
    const slot = secretSlotOf(secret.provider, secret.secret);
    const conflict = () =>
      new ConflictError(
        expectedVersion === undefined
          ? `A ${secret.provider} secret named '${secret.secret}' already exists; rotate it instead.`
          : `The ${secret.provider} secret '${secret.secret}' changed meanwhile; retry.`,
      );
    await this.withAudit(secret.tenant, audit, (tenant) => {
      if (tenant.secretVersions?.[slot]?.version !== expectedVersion) throw conflict();
      const row = this.db.one('SELECT 1 AS x FROM secrets WHERE tenant_id = ? AND provider = ? AND name = ?', [secret.tenant, secret.provider, secret.secret]);
      if (expectedVersion === undefined && row) throw conflict();
      checkSecretWrite(tenant, write);
      this.db.run('INSERT OR REPLACE INTO secrets(tenant_id, provider, name, version, body) VALUES (?, ?, ?, ?, ?)', [
        secret.tenant,
        secret.provider,
        secret.secret,
        secret.version,
        JSON.stringify(secret),
      ]);
      return withSecretVersion(tenant, slot, current);
    });
  }

  /** Replaces `before` by its rewrapped twin only if the row and META still hold `before` (see TenantStore). */
  async rewrapSecret(before: SealedSecret, after: SealedSecret, audit: AuditEventInput): Promise<boolean> {
    const slot = secretSlotOf(before.provider, before.secret);
    try {
      await this.withAudit(before.tenant, audit, (tenant) => {
        if (tenant.secretVersions?.[slot]?.version !== before.version) throw MISSING;
        const row = this.db.one('SELECT body FROM secrets WHERE tenant_id = ? AND provider = ? AND name = ?', [before.tenant, before.provider, before.secret]);
        const stored = row ? (parseJson(row.body) as Partial<SealedSecret>) : undefined;
        if (!stored || stored.keyArn !== before.keyArn || stored.wrappedKey !== before.wrappedKey || stored.version !== before.version) throw MISSING;
        this.db.run('UPDATE secrets SET body = ? WHERE tenant_id = ? AND provider = ? AND name = ?', [JSON.stringify(after), before.tenant, before.provider, before.secret]);
        return tenant;
      });
      return true;
    } catch (err) {
      if (err === MISSING) return false;
      throw err;
    }
  }

  /** Deletes the row and META's entry together; true if either existed. */
  async deleteSecret(tenantId: string, provider: string, name: string, audit: AuditEventInput): Promise<boolean> {
    const slot = secretSlotOf(provider, name);
    try {
      await this.withAudit(tenantId, audit, (tenant) => {
        const recorded = tenant.secretVersions?.[slot] !== undefined;
        const deleted = this.db.run('DELETE FROM secrets WHERE tenant_id = ? AND provider = ? AND name = ?', [tenantId, provider, name]) > 0;
        if (!recorded && !deleted) throw MISSING;
        return withSecretVersion(tenant, slot, undefined);
      });
      return true;
    } catch (err) {
      if (err === MISSING) return false;
      throw err;
    }
  }

  async getErasureKey(tenantId: string): Promise<Buffer | undefined> {
    return erasureKeyFromItem(parseJson(this.db.one('SELECT body FROM erasure_keys WHERE tenant_id = ?', [tenantId])?.body), tenantId);
  }

  async ensureErasureKey(tenantId: string, fresh: Buffer): Promise<Buffer> {
    const item = erasureKeyItemOf(tenantId, fresh, this.clock.now());
    const stored = this.db.transaction(() => {
      if (this.tenant(tenantId)?.status !== 'active') throw new ConflictError(`Tenant '${tenantId}' is not active; no key can be created.`);
      this.db.run('INSERT OR IGNORE INTO erasure_keys(tenant_id, body) VALUES (?, ?)', [tenantId, JSON.stringify(item)]);
      return this.db.one('SELECT body FROM erasure_keys WHERE tenant_id = ?', [tenantId])?.body;
    });
    const key = erasureKeyFromItem(parseJson(stored), tenantId);
    if (!key) throw new ConflictError(`The erasure key of tenant '${tenantId}' could not be stored; retry.`);
    return key;
  }

  async offboardTenant(tenantId: string, audit: (counts: OffboardCounts) => AuditEventInput): Promise<OffboardCounts> {
    // One transaction: freeze, destroy the erasure key, tokens and sealed secrets, record.
    // Nothing can be half done, so the order inside it does not matter.
    // The event is sealed (audit key) before it, for the counts read here; a head or count that
    // moved meanwhile is a lost race, retried.
    for (let attempt = 0; attempt < AUDIT_ATTEMPTS; attempt++) {
      const before = this.tenant(tenantId);
      if (!before || (before.status !== 'active' && before.status !== 'offboarding')) throw new ConflictError(`Tenant '${tenantId}' is already offboarded.`);
      const counted = this.countsOf(tenantId);
      const now = this.clock.now();
      const event = await this.trail.seal(tenantId, { seq: before.auditSeq, mac: before.auditHead }, audit(counted), now);
      const counts = this.db.transaction(() => {
        const tenant = this.tenant(tenantId);
        if (!tenant || (tenant.status !== 'active' && tenant.status !== 'offboarding')) throw new ConflictError(`Tenant '${tenantId}' is already offboarded.`);
        const again = this.countsOf(tenantId);
        if (tenant.auditSeq !== before.auditSeq || again.tokens !== counted.tokens || again.secrets !== counted.secrets) return undefined;
        this.db.run('DELETE FROM erasure_keys WHERE tenant_id = ?', [tenantId]);
        this.db.run('DELETE FROM tokens WHERE tenant_id = ?', [tenantId]);
        this.db.run('DELETE FROM secrets WHERE tenant_id = ?', [tenantId]);
        this.insertAudit(event);
        this.writeTenant({
          ...tenant,
          status: 'offboarded',
          offboardedAt: now.toISOString(),
          updatedAt: now.toISOString(),
          secretVersions: {},
          auditSeq: event.seq,
          auditHead: event.mac,
        });
        return counted;
      });
      if (!counts) continue;
      await this.trail.anchor(event);
      return counts;
    }
    throw new ConflictError(`Too many concurrent changes to tenant '${tenantId}'; retry.`);
  }

  async listTokenInventory(): Promise<TokenInventoryRow[]> {
    return this.db.all('SELECT body FROM tokens').map((r) => {
      const t = parseJson<TokenRecord>(r.body)!;
      return { tenantId: t.tenantId, tokenId: t.tokenId, role: t.role, ...(t.label !== undefined ? { label: t.label } : {}), ...(t.pepperVersion !== undefined ? { pepperVersion: t.pepperVersion } : {}) };
    });
  }

  async appendCellEvent(region: string, audit: AuditEventInput): Promise<void> {
    this.db.transaction(() => {
      if (!this.tenant(CELL_AUDIT_ID)) this.writeTenant(cellChainRecord(region, this.clock.now().toISOString()));
    });
    await this.withAudit(CELL_AUDIT_ID, audit, (t) => t);
  }

  async beginFactorChange(tenantId: string, change: FactorChange, first: { verifier: string; update: TokenFactorUpdate } | undefined, audit: AuditEventInput): Promise<void> {
    try {
      await this.withAudit(tenantId, audit, (tenant) => {
        checkFactorChangeStart(tenant, change);
        if (first && !this.setTokenFactor(tenantId, first.verifier, first.update)) throw MISSING;
        return { ...tenant, factorChange: change };
      });
    } catch (err) {
      if (err === MISSING) throw new ConflictError('The token that starts the factor change was revoked meanwhile.');
      throw err;
    }
  }

  async updateTokenFactor(tenantId: string, verifier: string, update: TokenFactorUpdate): Promise<boolean> {
    return this.db.transaction(() => this.setTokenFactor(tenantId, verifier, update));
  }

  async finishFactorChange(tenantId: string, to: { mode: TenantMode; generation: number }, audit: AuditEventInput): Promise<TenantRecord> {
    const now = this.clock.now().toISOString();
    return this.withAudit(tenantId, audit, (tenant) => {
      const { factorChange: _done, ...rest } = tenant;
      return { ...rest, ...checkFactorChangeFinish(tenant, to), updatedAt: now };
    });
  }

  private setTokenFactor(tenantId: string, verifier: string, update: TokenFactorUpdate): boolean {
    const token = parseJson<TokenRecord>(this.db.one('SELECT body FROM tokens WHERE verifier = ? AND tenant_id = ?', [verifier, tenantId])?.body);
    if (!token) return false;
    this.db.run('UPDATE tokens SET body = ? WHERE verifier = ?', [JSON.stringify(withTokenFactor(token, update)), verifier]);
    return true;
  }

  private countsOf(tenantId: string): OffboardCounts {
    const n = (table: string) => Number(this.db.one(`SELECT COUNT(*) AS n FROM ${table} WHERE tenant_id = ?`, [tenantId])?.n ?? 0);
    const legacy = this.db
      .all('SELECT body FROM secrets WHERE tenant_id = ?', [tenantId])
      .filter((r) => (parseJson<{ formatVersion?: unknown }>(r.body) ?? {}).formatVersion === 1).length;
    return { tokens: n('tokens'), secrets: n('secrets'), legacySecrets: legacy };
  }

  async listAudit(tenantId: string): Promise<AuditEvent[]> {
    return this.db.all('SELECT body FROM audit WHERE tenant_id = ? ORDER BY seq', [tenantId]).map((r) => parseJson<AuditEvent>(r.body)!);
  }

  // ------------------------------------------------------------------ internals

  private tenant(tenantId: string): TenantRecord | undefined {
    return parseJson<TenantRecord>(this.db.one('SELECT body FROM tenants WHERE tenant_id = ?', [tenantId])?.body);
  }

  private tokensOf(tenantId: string): TokenRecord[] {
    return this.db.all('SELECT body FROM tokens WHERE tenant_id = ? ORDER BY token_id', [tenantId]).map((r: Row) => parseJson<TokenRecord>(r.body)!);
  }

  private hasToken(tenantId: string, tokenId: string): boolean {
    return this.db.one('SELECT 1 AS x FROM tokens WHERE tenant_id = ? AND token_id = ?', [tenantId, tokenId]) !== undefined;
  }

  private writeTenant(t: TenantRecord): void {
    this.db.run('INSERT OR REPLACE INTO tenants(tenant_id, body) VALUES (?, ?)', [t.tenantId, JSON.stringify(t)]);
  }

  private insertToken(t: TokenRecord): void {
    this.db.run('INSERT INTO tokens(verifier, tenant_id, token_id, body) VALUES (?, ?, ?, ?)', [t.verifier, t.tenantId, t.tokenId, JSON.stringify(t)]);
  }

  private insertAudit(e: AuditEvent): void {
    // The primary key refuses a second event at the same place in the chain.
    this.db.run('INSERT INTO audit(tenant_id, seq, body) VALUES (?, ?, ?)', [e.tenantId, e.seq, JSON.stringify(e)]);
  }

  /**
   * Runs `change` in one transaction with the next audit event and the head move; the tenant
   * must exist and be active. `change` returns the tenant as it should be stored. The event is
   * sealed with the audit key (asynchronous) before the transaction; if another change moved the
   * head meanwhile, the race is lost and retried, up to AUDIT_ATTEMPTS times (then a 409).
   */
  private async withAudit(tenantId: string, input: AuditEventInput, change: (t: TenantRecord) => TenantRecord): Promise<TenantRecord> {
    for (let attempt = 0; attempt < AUDIT_ATTEMPTS; attempt++) {
      const before = this.activeTenant(tenantId);
      const event = await this.trail.seal(tenantId, { seq: before.auditSeq, mac: before.auditHead }, input, this.clock.now());
      const stored = this.db.transaction(() => {
        const tenant = this.activeTenant(tenantId);
        if (tenant.auditSeq !== before.auditSeq) return undefined;
        const changed = change(tenant);
        const next = { ...changed, auditSeq: event.seq, auditHead: event.mac };
        this.writeTenant(next);
        this.insertAudit(event);
        return next;
      });
      if (!stored) continue;
      await this.trail.anchor(event);
      return stored;
    }
    throw new ConflictError(`Too many concurrent changes to tenant '${tenantId}'; retry.`);
  }

  private activeTenant(tenantId: string): TenantRecord {
    const tenant = this.tenant(tenantId);
    if (!tenant) throw new ConflictError(`Tenant '${tenantId}' does not exist.`);
    if (tenant.status !== 'active') throw new ConflictError(`Tenant '${tenantId}' is ${tenant.status}; no change can be made.`);
    return tenant;
  }

  /** Like withAudit, but `change` may report "not there" (false): then nothing is written or recorded. */
  private async withAuditOrMissing(tenantId: string, input: AuditEventInput, change: (t: TenantRecord) => boolean): Promise<boolean> {
    try {
      await this.withAudit(tenantId, input, (t) => {
        if (!change(t)) throw MISSING;
        return t;
      });
      return true;
    } catch (err) {
      if (err === MISSING) return false;
      throw err;
    }
  }
}

const MISSING = new Error('missing');

/** Attempts at an audited change when other changes to the tenant keep winning the race. */
const AUDIT_ATTEMPTS = 5;

/** The tenant with one entry of META's secret versions replaced (or removed when `entry` is undefined). */
function withSecretVersion(tenant: TenantRecord, slot: string, entry: SecretVersionEntry | undefined): TenantRecord {
  const next: Record<string, SecretVersionEntry> = { ...tenant.secretVersions };
  if (entry) next[slot] = entry;
  else delete next[slot];
  return { ...tenant, secretVersions: next };
}
