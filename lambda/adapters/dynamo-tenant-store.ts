import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  BatchWriteCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  QueryCommandInput,
  TransactWriteCommand,
  TransactWriteCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { AUDIT_GENESIS, AuditEvent, AuditEventInput, AuditTrail } from '../core/audit-chain';
import { secretKey, stripKeys, tenantKey } from './tenant-items';
import { moveTokenVerifierItem } from './dynamo-token-verifier';
// The vault and the local moto backend compose the router's adapters with the SDK clients they
// give this store: their rpc seam needs the SDK path (aws-rpc.ts registerSdkRpc).
import './aws-sdk-rpc';
import { findListedToken } from '../core/listed-token';
import type { VersionedVerifier } from '../core/pepper-ring';
import { parseSealedSecret, SealedSecret } from '../core/envelope';
import type { Clock } from '../core/ports';
import { systemClock } from '../core/ports';
import { checkFactorChangeFinish, checkFactorChangeStart, checkSecretWrite, checkTokenWrite } from '../core/factor-generations';
import { CELL_AUDIT_ID, cellChainRecord, ConflictError, LastAdminTokenError, OffboardCounts, SecretWrite, TenantStore, TokenFactorUpdate, type TokenInventoryRow } from '../core/store';
import {
  secretSlotOf,
  type FactorChange,
  type Limits,
  type SecretVersionEntry,
  type TenantMode,
  type TenantPolicy,
  type TenantRecord,
  type TokenRecord,
} from '../core/tenant-model';
import { erasureKeyFromItem, erasureKeyItemOf } from '../core/erasure-key';

export interface TableNames {
  readonly tenants: string;
  readonly tokens: string;
  readonly audit: string;
  /** Tenant erasure keys (no PITR, no backups). */
  readonly erasure: string;
  /** The counters table, for the admin usage report (read only). */
  readonly counters?: string;
}

type TransactItems = NonNullable<TransactWriteCommandInput['TransactItems']>;
type TenantUpdate = { set: string; values: Record<string, unknown>; names?: Record<string, string> };

/** META's secret versions with one entry replaced (or removed when `entry` is undefined). */
function withSecretVersion(tenant: TenantRecord, slot: string, entry: SecretVersionEntry | undefined): TenantUpdate {
  const next: Record<string, SecretVersionEntry> = { ...tenant.secretVersions };
  if (entry) next[slot] = entry;
  else delete next[slot];
  // The whole map is written: the head condition (auditSeq unchanged since this read) makes the
  // read-modify-write atomic, and it also works for a META written before the map existed.
  return { set: 'secretVersions = :secretVersions', values: { ':secretVersions': next } };
}


/** Which items of a cancelled transaction failed their condition, and whether any lost a conflict. */
function cancellation(err: unknown): { failed: number[]; conflict: boolean } | undefined {
  const e = err as { name?: string; CancellationReasons?: { Code?: string }[] };
  if (e?.name !== 'TransactionCanceledException') return undefined;
  const reasons = e.CancellationReasons ?? [];
  return {
    failed: reasons.flatMap((r, i) => (r.Code === 'ConditionalCheckFailed' ? [i] : [])),
    conflict: reasons.some((r) => r.Code === 'TransactionConflict'),
  };
}

/** Which items of a cancelled transaction failed their condition. */
function failedConditions(err: unknown): number[] | undefined {
  return cancellation(err)?.failed;
}

/** Looks at the byTenant listing again (after 50, 100, 200 ms) when a token was not under the verifier it showed. */
const TOKEN_LOOKUP_ATTEMPTS = 4;

/** Attempts at an audited change when other changes to the tenant keep winning the race. */
export const AUDIT_ATTEMPTS = 5;

/**
 * DynamoDB persistence. Every change is one transaction together with its audit event and the
 * move of the tenant's audit head, so no change lands unrecorded and none is recorded twice.
 */
export class DynamoTenantStore implements TenantStore {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    private readonly tables: TableNames,
    /** Seals each event with the audit key and anchors it once committed. */
    private readonly trail: AuditTrail,
    private readonly clock: Clock = systemClock,
  ) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  }

  async getTenant(tenantId: string): Promise<TenantRecord | undefined> {
    const out = await this.doc.send(new GetCommand({ TableName: this.tables.tenants, Key: tenantKey(tenantId), ConsistentRead: true }));
    return out.Item ? stripKeys<TenantRecord>(out.Item) : undefined;
  }

  async createTenant(tenant: TenantRecord, firstToken: TokenRecord, audit: AuditEventInput): Promise<void> {
    const event = await this.trail.seal(tenant.tenantId, { seq: 0, mac: AUDIT_GENESIS }, audit, this.clock.now());
    try {
      await this.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.tables.tenants,
                Item: { ...tenantKey(tenant.tenantId), ...tenant, auditSeq: event.seq, auditHead: event.mac },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
            { Put: { TableName: this.tables.tokens, Item: { ...firstToken }, ConditionExpression: 'attribute_not_exists(verifier)' } },
            { Put: { TableName: this.tables.audit, Item: { ...event }, ConditionExpression: 'attribute_not_exists(seq)' } },
          ],
        }),
      );
    } catch (err) {
      if (failedConditions(err)?.length) throw new ConflictError(`Tenant '${tenant.tenantId}' already exists.`);
      throw err;
    }
    await this.trail.anchor(event);
  }

  async updatePolicy(tenantId: string, policy: TenantPolicy, audit: AuditEventInput): Promise<TenantRecord> {
    const now = this.clock.now().toISOString();
    await this.withAudit(tenantId, audit, () => [], { set: 'policy = :policy, updatedAt = :now', values: { ':policy': policy, ':now': now } });
    const updated = await this.getTenant(tenantId);
    if (!updated) throw new ConflictError(`Tenant '${tenantId}' disappeared.`);
    return updated;
  }

  async getToken(verifier: string): Promise<TokenRecord | undefined> {
    const out = await this.doc.send(new GetCommand({ TableName: this.tables.tokens, Key: { verifier }, ConsistentRead: true }));
    return out.Item as TokenRecord | undefined;
  }

  /** On-use pepper upgrade (authenticate.ts); not an audited change: the token's authority is unchanged. */
  async moveTokenVerifier(item: Readonly<Record<string, unknown>>, to: VersionedVerifier): Promise<boolean> {
    return moveTokenVerifierItem((input) => this.doc.send(new TransactWriteCommand(input as TransactWriteCommandInput)), this.tables.tokens, item, to);
  }

  async listTokens(tenantId: string): Promise<TokenRecord[]> {
    return (await this.queryAll({
      TableName: this.tables.tokens,
      IndexName: 'byTenant',
      KeyConditionExpression: 'tenantId = :t',
      ExpressionAttributeValues: { ':t': tenantId },
    })) as unknown as TokenRecord[];
  }

  async putToken(token: TokenRecord, audit: AuditEventInput): Promise<void> {
    const added = await this.withAuditOrMissing(
      token.tenantId,
      audit,
      () => [{ Put: { TableName: this.tables.tokens, Item: { ...token }, ConditionExpression: 'attribute_not_exists(verifier)' } }],
      // Under the head condition: no factor change started since, and the wrap is of the current generation.
      (tenant) => void checkTokenWrite(tenant, token),
    );
    if (!added) throw new ConflictError('A token with this verifier already exists.');
  }

  async deleteToken(tenantId: string, tokenId: string, audit: AuditEventInput): Promise<boolean> {
    return this.onListedToken(tenantId, tokenId, false, (token, tokens) => this.deleteListedToken(tenantId, token, tokens, audit));
  }

  private async deleteListedToken(tenantId: string, token: TokenRecord, tokens: TokenRecord[], audit: AuditEventInput): Promise<boolean> {
    const tokenId = token.tokenId;
    if (token.role !== 'tenant-admin') return this.withAuditOrMissing(tenantId, audit, () => [this.deleteTokenItem(token)]);
    // Another admin token must still exist when the delete commits (checked in the transaction).
    const others = tokens.filter((t) => t.role === 'tenant-admin' && t.tokenId !== tokenId);
    for (const other of others) {
      try {
        return await this.withAuditOrMissing(tenantId, audit, () => [
          this.deleteTokenItem(token),
          {
            ConditionCheck: {
              TableName: this.tables.tokens,
              Key: { verifier: other.verifier },
              ConditionExpression: 'attribute_exists(verifier) AND #role = :admin AND tenantId = :t',
              ExpressionAttributeNames: { '#role': 'role' },
              ExpressionAttributeValues: { ':admin': 'tenant-admin', ':t': tenantId },
            },
          },
        ]);
      } catch (err) {
        if (!(err instanceof OtherItemConditionFailed)) throw err;
        // That admin token went away meanwhile: try the next one.
      }
    }
    throw new LastAdminTokenError();
  }

  async replaceToken(next: TokenRecord, previousTokenId: string, audit: AuditEventInput): Promise<boolean> {
    return this.onListedToken(next.tenantId, previousTokenId, false, (previous) => this.replaceListedToken(next, previous, audit));
  }

  private async replaceListedToken(next: TokenRecord, previous: TokenRecord, audit: AuditEventInput): Promise<boolean> {
    try {
      return await this.withAuditOrMissing(
        next.tenantId,
        audit,
        () => [this.deleteTokenItem(previous), { Put: { TableName: this.tables.tokens, Item: { ...next }, ConditionExpression: 'attribute_not_exists(verifier)' } }],
        (tenant) => void checkTokenWrite(tenant, next),
      );
    } catch (err) {
      if (err instanceof OtherItemConditionFailed) throw new ConflictError('A token with this verifier already exists.');
      throw err;
    }
  }

  async updateTokenLimits(tenantId: string, tokenId: string, limits: Limits, audit: AuditEventInput): Promise<TokenRecord | undefined> {
    return this.onListedToken(tenantId, tokenId, undefined, (token) => this.updateListedTokenLimits(tenantId, token, limits, audit));
  }

  private async updateListedTokenLimits(tenantId: string, token: TokenRecord, limits: Limits, audit: AuditEventInput): Promise<TokenRecord | undefined> {
    const tokenId = token.tokenId;
    const clear = Object.keys(limits).length === 0;
    const ok = await this.withAuditOrMissing(tenantId, audit, () => [
      {
        Update: {
          TableName: this.tables.tokens,
          Key: { verifier: token.verifier },
          UpdateExpression: clear ? 'REMOVE limits' : 'SET limits = :limits',
          ConditionExpression: 'attribute_exists(verifier) AND tenantId = :t AND tokenId = :id',
          ExpressionAttributeValues: { ':t': tenantId, ':id': tokenId, ...(clear ? {} : { ':limits': limits }) },
        },
      },
    ]);
    if (!ok) return undefined;
    const { limits: _old, ...rest } = token;
    return clear ? rest : { ...rest, limits };
  }

  /**
   * Runs a change on a token found by id in the byTenant listing. The listing names the verifier
   * the change is keyed by; a token moved to the current pepper meanwhile (on use, see
   * authenticate.ts), or an index that has not caught up with such a move, makes the change find
   * nothing under that key; an index lagging behind a move can also list the token under neither
   * verifier (findListedToken looks again). Then it looks again, a few times, before it answers
   * "no such token": a revocation must never report a live token as gone.
   */
  private async onListedToken<R>(tenantId: string, tokenId: string, missing: R, change: (token: TokenRecord, tokens: TokenRecord[]) => Promise<R>): Promise<R> {
    for (let attempt = 0; attempt < TOKEN_LOOKUP_ATTEMPTS; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 25 * 2 ** attempt));
      // Not listed at all may be an index that shows a moving token under neither verifier.
      const listed = await findListedToken((t) => this.listTokens(t), tenantId, tokenId);
      if (!listed) return missing;
      const { token, tokens } = listed;
      try {
        const result = await change(token, tokens);
        if (result !== missing) return result;
      } catch (err) {
        // The other admin tokens may have moved too: look again before refusing.
        if (!(err instanceof LastAdminTokenError) || attempt === TOKEN_LOOKUP_ATTEMPTS - 1) throw err;
      }
    }
    return missing;
  }

  async getCounterItems(keys: readonly { readonly pk: string; readonly sk: string }[]): Promise<Map<string, Record<string, unknown>>> {
    const table = this.tables.counters;
    if (!table) throw new Error('DynamoTenantStore: no counters table configured');
    const out = new Map<string, Record<string, unknown>>();
    for (let i = 0; i < keys.length; i += 100) {
      let request: Record<string, { Keys: Record<string, unknown>[]; ConsistentRead: boolean }> | undefined = {
        [table]: { Keys: keys.slice(i, i + 100).map((k) => ({ pk: k.pk, sk: k.sk })), ConsistentRead: true },
      };
      for (let attempt = 0; request && Object.keys(request).length > 0; attempt++) {
        if (attempt > 8) throw new Error('DynamoDB kept returning unprocessed keys');
        if (attempt > 0) await new Promise((r) => setTimeout(r, 20 * 2 ** attempt));
        const res = await this.doc.send(new BatchGetCommand({ RequestItems: request }));
        for (const item of res.Responses?.[table] ?? []) out.set(`${String(item.pk)}|${String(item.sk)}`, item);
        request = res.UnprocessedKeys as typeof request;
      }
    }
    return out;
  }

  async getSecret(tenantId: string, provider: string, name: string): Promise<SealedSecret | undefined> {
    const out = await this.doc.send(new GetCommand({ TableName: this.tables.tenants, Key: secretKey(tenantId, provider, name), ConsistentRead: true }));
    return out.Item ? parseSealedSecret(stripKeys(out.Item)) : undefined;
  }

  async listSecrets(tenantId: string): Promise<SealedSecret[]> {
    const items = await this.queryAll({
      TableName: this.tables.tenants,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
      ExpressionAttributeValues: { ':pk': `TENANT#${tenantId}`, ':prefix': 'SECRET#' },
      ConsistentRead: true,
    });
    return items.map((i) => parseSealedSecret(stripKeys(i)));
  }

  async putSecret(write: SecretWrite, audit: AuditEventInput): Promise<void> {
    const { sealed: secret, current, expectedVersion } = write;
    if (current.version !== secret.version) throw new Error('putSecret: META entry and row disagree on the version');
    const slot = secretSlotOf(secret.provider, secret.secret);
    const exists = `A ${secret.provider} secret named '${secret.secret}' already exists; rotate it instead.`;
    const moved = `The ${secret.provider} secret '${secret.secret}' changed meanwhile; retry.`;
    const put = {
      Put: {
        TableName: this.tables.tenants,
        Item: { ...secretKey(secret.tenant, secret.provider, secret.secret), ...secret },
        // A rotation overwrites whatever row is there: META, not the row, says what is current.
        ...(expectedVersion === undefined ? { ConditionExpression: 'attribute_not_exists(pk)' } : {}),
      },
    };
    const ok = await this.withAuditOrMissing(
      secret.tenant,
      audit,
      () => [put],
      (tenant) => {
        if (tenant.secretVersions?.[slot]?.version !== expectedVersion) throw new ConflictError(expectedVersion === undefined ? exists : moved);
        checkSecretWrite(tenant, write);
        return withSecretVersion(tenant, slot, current);
      },
    );
    if (!ok) throw new ConflictError(expectedVersion === undefined ? exists : moved);
  }

  async rewrapSecret(before: SealedSecret, after: SealedSecret, audit: AuditEventInput): Promise<boolean> {
    const slot = secretSlotOf(before.provider, before.secret);
    return this.withAuditOrMissing(before.tenant, audit, (tenant) => {
      // META moved on (rotation, deletion): the row we read is no longer the current one.
      if (tenant.secretVersions?.[slot]?.version !== before.version) throw new ChangeConditionFailed();
      return [
        {
          Put: {
            TableName: this.tables.tenants,
            Item: { ...secretKey(after.tenant, after.provider, after.secret), ...after },
            // Exactly the row that was rewrapped: a concurrent reseal or rotation is never overwritten.
            ConditionExpression: 'keyArn = :fromKey AND wrappedKey = :fromWrapped AND version = :version',
            ExpressionAttributeValues: { ':fromKey': before.keyArn, ':fromWrapped': before.wrappedKey, ':version': before.version },
          },
        },
      ];
    });
  }

  async deleteSecret(tenantId: string, provider: string, name: string, audit: AuditEventInput): Promise<boolean> {
    const slot = secretSlotOf(provider, name);
    let recorded = false;
    return this.withAuditOrMissing(
      tenantId,
      audit,
      () => [
        {
          Delete: {
            TableName: this.tables.tenants,
            Key: secretKey(tenantId, provider, name),
            // With a META entry the secret exists even if its row was removed behind our back.
            ...(recorded ? {} : { ConditionExpression: 'attribute_exists(pk)' }),
          },
        },
      ],
      (tenant) => {
        recorded = tenant.secretVersions?.[slot] !== undefined;
        return withSecretVersion(tenant, slot, undefined);
      },
    );
  }

  async getErasureKey(tenantId: string): Promise<Buffer | undefined> {
    const out = await this.doc.send(new GetCommand({ TableName: this.tables.erasure, Key: { tenantId }, ConsistentRead: true }));
    return erasureKeyFromItem(out.Item, tenantId);
  }

  async ensureErasureKey(tenantId: string, fresh: Buffer): Promise<Buffer> {
    const existing = await this.getErasureKey(tenantId);
    if (existing) return existing;
    const item = erasureKeyItemOf(tenantId, fresh, this.clock.now());
    try {
      await this.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              // No key may appear once an offboarding has frozen the tenant.
              ConditionCheck: {
                TableName: this.tables.tenants,
                Key: tenantKey(tenantId),
                ConditionExpression: '#status = :active',
                ExpressionAttributeNames: { '#status': 'status' },
                ExpressionAttributeValues: { ':active': 'active' },
              },
            },
            { Put: { TableName: this.tables.erasure, Item: { ...item }, ConditionExpression: 'attribute_not_exists(tenantId)' } },
          ],
        }),
      );
      return Buffer.from(fresh);
    } catch (err) {
      const cancelled = cancellation(err);
      if (!cancelled) throw err;
      if (cancelled.failed.includes(0)) throw new ConflictError(`Tenant '${tenantId}' is not active; no key can be created.`);
      // Another writer stored one first (or held the item): use what is there.
      const winner = await this.getErasureKey(tenantId);
      if (!winner) throw new ConflictError(`The erasure key of tenant '${tenantId}' changed meanwhile; retry.`);
      return winner;
    }
  }

  async offboardTenant(tenantId: string, audit: (counts: OffboardCounts) => AuditEventInput): Promise<OffboardCounts> {
    // 1. Freeze: once `offboarding`, tokens stop working and no other change can land (every
    //    audited write requires `active`). A re-run finds it already frozen and carries on.
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tables.tenants,
          Key: tenantKey(tenantId),
          UpdateExpression: 'SET #status = :offboarding, updatedAt = :now',
          ConditionExpression: '#status IN (:active, :offboarding)',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':offboarding': 'offboarding', ':active': 'active', ':now': this.clock.now().toISOString() },
        }),
      );
    } catch (err) {
      if ((err as { name?: string }).name === 'ConditionalCheckFailedException') {
        throw new ConflictError(`Tenant '${tenantId}' is already offboarded.`);
      }
      throw err;
    }
    // 2. Crypto-shredding: the erasure key goes first. Its table has no PITR and no backups, so
    //    from here no copy of the other tables (PITR, backups, exports) opens a v2 secret of the
    //    tenant. Deleting a missing item succeeds: a re-run passes through.
    await this.doc.send(new DeleteCommand({ TableName: this.tables.erasure, Key: { tenantId } }));
    // 3. Tokens (access), then the sealed rows, read raw so a malformed row cannot block this.
    const tokens = await this.listTokens(tenantId);
    await this.batchDelete(this.tables.tokens, tokens.map((t) => ({ verifier: t.verifier })));
    const rows = await this.queryAll({
      TableName: this.tables.tenants,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
      ExpressionAttributeValues: { ':pk': `TENANT#${tenantId}`, ':prefix': 'SECRET#' },
      ConsistentRead: true,
    });
    await this.batchDelete(this.tables.tenants, rows.map((r) => ({ pk: r.pk, sk: r.sk })));
    // 4. Done: recorded in the audit chain together with the final status.
    const counts: OffboardCounts = { secrets: rows.length, tokens: tokens.length, legacySecrets: rows.filter((r) => r.formatVersion === 1).length };
    const now = this.clock.now().toISOString();
    await this.withAudit(
      tenantId,
      audit(counts),
      () => [],
      {
        set: 'offboardedAt = :now, updatedAt = :now, #tenantStatus = :off, secretVersions = :none',
        values: { ':off': 'offboarded', ':now': now, ':none': {} },
      },
      'offboarding',
    );
    return counts;
  }

  async beginFactorChange(tenantId: string, change: FactorChange, first: { verifier: string; update: TokenFactorUpdate } | undefined, audit: AuditEventInput): Promise<void> {
    const ok = await this.withAuditOrMissing(
      tenantId,
      audit,
      () => (first ? [this.tokenFactorItem(tenantId, first.verifier, first.update)] : []),
      (tenant) => {
        checkFactorChangeStart(tenant, change);
        return { set: 'factorChange = :change', values: { ':change': change } };
      },
    );
    if (!ok) throw new ConflictError('The token that starts the factor change was revoked meanwhile.');
  }

  async updateTokenFactor(tenantId: string, verifier: string, update: TokenFactorUpdate): Promise<boolean> {
    const { Update } = this.tokenFactorItem(tenantId, verifier, update) as { Update: NonNullable<TransactItems[number]['Update']> };
    try {
      await this.doc.send(new UpdateCommand(Update));
      return true;
    } catch (err) {
      if ((err as { name?: string }).name === 'ConditionalCheckFailedException') return false;
      throw err;
    }
  }

  async finishFactorChange(tenantId: string, to: { mode: TenantMode; generation: number }, audit: AuditEventInput): Promise<TenantRecord> {
    const now = this.clock.now().toISOString();
    await this.withAudit(tenantId, audit, () => [], (tenant) => {
      const next = checkFactorChangeFinish(tenant, to);
      const gen = next.factorGeneration === undefined ? {} : { ':gen': next.factorGeneration };
      return {
        set: `#mode = :mode, updatedAt = :now${next.factorGeneration === undefined ? '' : ', factorGeneration = :gen'} REMOVE factorChange`,
        values: { ':mode': next.mode, ':now': now, ...gen },
        names: { '#mode': 'mode' },
      };
    });
    const updated = await this.getTenant(tenantId);
    if (!updated) throw new ConflictError(`Tenant '${tenantId}' disappeared.`);
    return updated;
  }

  /** The token's factor fields set or removed, if the token (of this tenant) still exists. */
  private tokenFactorItem(tenantId: string, verifier: string, update: TokenFactorUpdate): TransactItems[number] {
    const set: string[] = [];
    const remove: string[] = [];
    const values: Record<string, unknown> = { ':t': tenantId };
    for (const k of ['wrappedFactor', 'factorKey', 'pendingFactor'] as const) {
      const v = update[k];
      if (v === null) remove.push(k);
      else if (v !== undefined) {
        set.push(`${k} = :${k}`);
        values[`:${k}`] = v;
      }
    }
    const expr = [set.length ? `SET ${set.join(', ')}` : '', remove.length ? `REMOVE ${remove.join(', ')}` : ''].filter(Boolean).join(' ');
    if (!expr) throw new Error('updateTokenFactor: empty update');
    return {
      Update: {
        TableName: this.tables.tokens,
        Key: { verifier },
        UpdateExpression: expr,
        ConditionExpression: 'attribute_exists(verifier) AND tenantId = :t',
        ExpressionAttributeValues: values,
      },
    };
  }

  async listAudit(tenantId: string): Promise<AuditEvent[]> {
    return (await this.queryAll({
      TableName: this.tables.audit,
      KeyConditionExpression: 'tenantId = :t',
      ExpressionAttributeValues: { ':t': tenantId },
      ConsistentRead: true,
    })) as unknown as AuditEvent[];
  }

  async listTokenInventory(): Promise<TokenInventoryRow[]> {
    const rows: TokenInventoryRow[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new ScanCommand({
          TableName: this.tables.tokens,
          // Never the verifier or the wrap: only what the status counts and shows.
          ProjectionExpression: 'tenantId, tokenId, #role, label, pepperVersion',
          ExpressionAttributeNames: { '#role': 'role' },
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      rows.push(...((out.Items ?? []) as TokenInventoryRow[]));
      start = out.LastEvaluatedKey;
    } while (start);
    return rows;
  }

  async appendCellEvent(region: string, audit: AuditEventInput): Promise<void> {
    const now = this.clock.now().toISOString();
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tables.tenants,
          Item: { ...tenantKey(CELL_AUDIT_ID), ...cellChainRecord(region, now) },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
    } catch (err) {
      if ((err as { name?: string }).name !== 'ConditionalCheckFailedException') throw err;
    }
    await this.withAudit(CELL_AUDIT_ID, audit, () => []);
  }

  private deleteTokenItem(token: TokenRecord): TransactItems[number] {
    return {
      Delete: {
        TableName: this.tables.tokens,
        Key: { verifier: token.verifier },
        ConditionExpression: 'attribute_exists(verifier) AND tenantId = :t',
        ExpressionAttributeValues: { ':t': token.tenantId },
      },
    };
  }

  /**
   * Like withAudit, but a failed condition on the first item (the change itself) means "not
   * there": false. A failed condition on a later item of the change is OtherItemConditionFailed.
   */
  private async withAuditOrMissing(
    tenantId: string,
    audit: AuditEventInput,
    items: (tenant: TenantRecord) => TransactItems,
    tenantUpdate?: (tenant: TenantRecord) => TenantUpdate | undefined,
  ): Promise<boolean> {
    try {
      await this.withAudit(tenantId, audit, items, tenantUpdate);
      return true;
    } catch (err) {
      if (err instanceof ChangeConditionFailed) return false;
      throw err;
    }
  }

  /**
   * Runs `items` in one transaction with the next audit event and the head move on the tenant,
   * then anchors the event. Items are laid out [...change, head, audit event]: a failed condition
   * inside the change is the caller's (ChangeConditionFailed for its first item,
   * OtherItemConditionFailed for the others); a lost race on the head or the audit slot, or a
   * transaction conflict, is retried on a fresh read of the tenant, up to AUDIT_ATTEMPTS times,
   * then answered as a ConflictError (409). An empty change (policy update, offboarding) has
   * only the head and the audit slot, so its lost race is retried like any other.
   */
  private async withAudit(
    tenantId: string,
    input: AuditEventInput,
    items: (tenant: TenantRecord) => TransactItems,
    /** A further change to META in the same transaction; a function sees the META just read. */
    tenantUpdateOf?: TenantUpdate | ((tenant: TenantRecord) => TenantUpdate | undefined),
    requiredStatus: TenantRecord['status'] = 'active',
  ): Promise<void> {
    for (let attempt = 0; attempt < AUDIT_ATTEMPTS; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, Math.random() * 10 * 2 ** attempt));
      const tenant = await this.getTenant(tenantId);
      if (!tenant) throw new ConflictError(`Tenant '${tenantId}' does not exist.`);
      if (tenant.status !== requiredStatus) {
        throw new ConflictError(`Tenant '${tenantId}' is ${tenant.status}; no change can be made.`);
      }
      // META's update first: it may refuse (ConflictError) or decide what the change holds.
      const tenantUpdate = typeof tenantUpdateOf === 'function' ? tenantUpdateOf(tenant) : tenantUpdateOf;
      const change = items(tenant);
      const event = await this.trail.seal(tenantId, { seq: tenant.auditSeq, mac: tenant.auditHead }, input, this.clock.now());
      const head: TransactItems[number] = {
        Update: {
          TableName: this.tables.tenants,
          Key: tenantKey(tenantId),
          UpdateExpression: `SET auditSeq = :seq, auditHead = :mac${tenantUpdate ? `, ${tenantUpdate.set}` : ''}`,
          // The status condition stops changes racing an offboarding.
          ConditionExpression: 'auditSeq = :prev AND #tenantStatus = :requiredStatus',
          ExpressionAttributeValues: {
            ':seq': event.seq,
            ':mac': event.mac,
            ':prev': tenant.auditSeq,
            ':requiredStatus': requiredStatus,
            ...tenantUpdate?.values,
          },
          ExpressionAttributeNames: { '#tenantStatus': 'status', ...tenantUpdate?.names },
        },
      };
      // Written only if absent: no role's PutItem can replace an event through this path.
      const auditPut = { Put: { TableName: this.tables.audit, Item: { ...event }, ConditionExpression: 'attribute_not_exists(seq)' } };
      try {
        await this.doc.send(new TransactWriteCommand({ TransactItems: [...change, head, auditPut] }));
      } catch (err) {
        const cancelled = cancellation(err);
        if (!cancelled) throw err;
        const inChange = cancelled.failed.filter((i) => i < change.length);
        if (inChange.includes(0)) throw new ChangeConditionFailed();
        if (inChange.length > 0) throw new OtherItemConditionFailed();
        if (cancelled.failed.length === 0 && !cancelled.conflict) throw err;
        // Only the head or the audit slot failed, or another transaction held an item: another
        // change won the race, or the status moved. Retry on a fresh read (which refuses a
        // tenant no longer in the required status).
        continue;
      }
      await this.trail.anchor(event);
      return;
    }
    throw new ConflictError(`Too many concurrent changes to tenant '${tenantId}'; retry.`);
  }

  private async queryAll(input: QueryCommandInput): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(new QueryCommand({ ...input, ExclusiveStartKey: start }));
      items.push(...((out.Items ?? []) as Record<string, unknown>[]));
      start = out.LastEvaluatedKey;
    } while (start);
    return items;
  }

  private async batchDelete(table: string, keys: Record<string, unknown>[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 25) {
      let requests = keys.slice(i, i + 25).map((Key) => ({ DeleteRequest: { Key } }));
      for (let attempt = 0; requests.length > 0; attempt++) {
        if (attempt > 8) throw new Error(`Could not delete ${requests.length} items from ${table} (throttled); run again to finish.`);
        const out = await this.doc.send(new BatchWriteCommand({ RequestItems: { [table]: requests } }));
        requests = (out.UnprocessedItems?.[table] ?? []) as typeof requests;
        if (requests.length > 0) await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
      }
    }
  }
}

/** The change's own condition failed (item missing, version moved). */
class ChangeConditionFailed extends Error {
  override readonly name = 'ChangeConditionFailed';
}

/** A condition on another item of the change failed (e.g. a ConditionCheck). */
class OtherItemConditionFailed extends Error {
  override readonly name = 'OtherItemConditionFailed';
}
