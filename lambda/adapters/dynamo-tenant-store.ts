import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  QueryCommandInput,
  TransactWriteCommand,
  TransactWriteCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { AuditEvent, AuditEventInput, nextAuditEvent } from '../core/audit-chain';
import { parseSealedSecret, SealedSecret } from '../core/envelope';
import type { Clock } from '../core/ports';
import { systemClock } from '../core/ports';
import { ConflictError, TenantStore } from '../core/store';
import type { TenantPolicy, TenantRecord, TokenRecord } from '../core/tenant-model';

export interface TableNames {
  readonly tenants: string;
  readonly tokens: string;
  readonly audit: string;
}

type TransactItems = NonNullable<TransactWriteCommandInput['TransactItems']>;

const tenantKey = (tenantId: string) => ({ pk: `TENANT#${tenantId}`, sk: 'META' });
const secretKey = (tenantId: string, provider: string, name: string) => ({ pk: `TENANT#${tenantId}`, sk: `SECRET#${provider}#${name}` });

function strip<T>(item: Record<string, unknown>): T {
  const { pk: _pk, sk: _sk, ...rest } = item;
  return rest as T;
}

/** Which items of a cancelled transaction failed their condition. */
function failedConditions(err: unknown): number[] | undefined {
  const e = err as { name?: string; CancellationReasons?: { Code?: string }[] };
  if (e?.name !== 'TransactionCanceledException') return undefined;
  return (e.CancellationReasons ?? []).flatMap((r, i) => (r.Code === 'ConditionalCheckFailed' ? [i] : []));
}

const AUDIT_RETRIES = 4;

/**
 * DynamoDB persistence. Every change is one transaction together with its audit event and the
 * move of the tenant's audit head, so no change lands unrecorded and none is recorded twice.
 */
export class DynamoTenantStore implements TenantStore {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    private readonly tables: TableNames,
    private readonly clock: Clock = systemClock,
  ) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  }

  async getTenant(tenantId: string): Promise<TenantRecord | undefined> {
    const out = await this.doc.send(new GetCommand({ TableName: this.tables.tenants, Key: tenantKey(tenantId), ConsistentRead: true }));
    return out.Item ? strip<TenantRecord>(out.Item) : undefined;
  }

  async createTenant(tenant: TenantRecord, firstToken: TokenRecord, audit: AuditEventInput): Promise<void> {
    const event = nextAuditEvent(tenant.tenantId, { seq: 0, hash: tenant.auditHead }, audit, this.clock.now());
    try {
      await this.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.tables.tenants,
                Item: { ...tenantKey(tenant.tenantId), ...tenant, auditSeq: event.seq, auditHead: event.hash },
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

  async listTokens(tenantId: string): Promise<TokenRecord[]> {
    return (await this.queryAll({
      TableName: this.tables.tokens,
      IndexName: 'byTenant',
      KeyConditionExpression: 'tenantId = :t',
      ExpressionAttributeValues: { ':t': tenantId },
    })) as unknown as TokenRecord[];
  }

  async putToken(token: TokenRecord, audit: AuditEventInput): Promise<void> {
    await this.withAudit(token.tenantId, audit, () => [
      { Put: { TableName: this.tables.tokens, Item: { ...token }, ConditionExpression: 'attribute_not_exists(verifier)' } },
    ]);
  }

  async deleteToken(tenantId: string, tokenId: string, audit: AuditEventInput): Promise<boolean> {
    const token = (await this.listTokens(tenantId)).find((t) => t.tokenId === tokenId);
    if (!token) return false;
    return this.withAuditOrMissing(tenantId, audit, () => [this.deleteTokenItem(token)]);
  }

  async replaceToken(next: TokenRecord, previousTokenId: string, audit: AuditEventInput): Promise<boolean> {
    const previous = (await this.listTokens(next.tenantId)).find((t) => t.tokenId === previousTokenId);
    if (!previous) return false;
    return this.withAuditOrMissing(next.tenantId, audit, () => [
      this.deleteTokenItem(previous),
      { Put: { TableName: this.tables.tokens, Item: { ...next }, ConditionExpression: 'attribute_not_exists(verifier)' } },
    ]);
  }

  async getSecret(tenantId: string, provider: string, name: string): Promise<SealedSecret | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tables.tenants, Key: secretKey(tenantId, provider, name), ConsistentRead: true }),
    );
    return out.Item ? parseSealedSecret(strip(out.Item)) : undefined;
  }

  async listSecrets(tenantId: string): Promise<SealedSecret[]> {
    const items = await this.queryAll({
      TableName: this.tables.tenants,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
      ExpressionAttributeValues: { ':pk': `TENANT#${tenantId}`, ':prefix': 'SECRET#' },
      ConsistentRead: true,
    });
    return items.map((i) => parseSealedSecret(strip(i)));
  }

  async putSecret(secret: SealedSecret, expectedVersion: number | undefined, audit: AuditEventInput): Promise<void> {
    const put = {
      Put: {
        TableName: this.tables.tenants,
        Item: { ...secretKey(secret.tenant, secret.provider, secret.secret), ...secret },
        ...(expectedVersion === undefined
          ? { ConditionExpression: 'attribute_not_exists(pk)' }
          : { ConditionExpression: 'version = :expected', ExpressionAttributeValues: { ':expected': expectedVersion } }),
      },
    };
    const ok = await this.withAuditOrMissing(secret.tenant, audit, () => [put]);
    if (!ok) {
      throw new ConflictError(
        expectedVersion === undefined
          ? `A ${secret.provider} secret named '${secret.secret}' already exists; rotate it instead.`
          : `The ${secret.provider} secret '${secret.secret}' changed meanwhile; retry.`,
      );
    }
  }

  async deleteSecret(tenantId: string, provider: string, name: string, audit: AuditEventInput): Promise<boolean> {
    return this.withAuditOrMissing(tenantId, audit, () => [
      { Delete: { TableName: this.tables.tenants, Key: secretKey(tenantId, provider, name), ConditionExpression: 'attribute_exists(pk)' } },
    ]);
  }

  async offboardTenant(
    tenantId: string,
    audit: (counts: { secrets: number; tokens: number }) => AuditEventInput,
  ): Promise<{ secrets: number; tokens: number }> {
    // Tokens first: access stops before anything else is touched. The tenant stays active until
    // the end, so an interrupted offboarding is finished by running it again.
    const tokens = await this.listTokens(tenantId);
    await this.batchDelete(this.tables.tokens, tokens.map((t) => ({ verifier: t.verifier })));
    const secrets = await this.listSecrets(tenantId);
    await this.batchDelete(this.tables.tenants, secrets.map((s) => secretKey(tenantId, s.provider, s.secret)));
    const counts = { secrets: secrets.length, tokens: tokens.length };
    const now = this.clock.now().toISOString();
    await this.withAudit(tenantId, audit(counts), () => [], {
      set: '#status = :off, offboardedAt = :now, updatedAt = :now',
      values: { ':off': 'offboarded', ':now': now },
      names: { '#status': 'status' },
    });
    return counts;
  }

  async listAudit(tenantId: string): Promise<AuditEvent[]> {
    return (await this.queryAll({
      TableName: this.tables.audit,
      KeyConditionExpression: 'tenantId = :t',
      ExpressionAttributeValues: { ':t': tenantId },
      ConsistentRead: true,
    })) as unknown as AuditEvent[];
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

  /** Like withAudit, but a failed condition on the change itself means "not there": false. */
  private async withAuditOrMissing(tenantId: string, audit: AuditEventInput, items: () => TransactItems): Promise<boolean> {
    try {
      await this.withAudit(tenantId, audit, items);
      return true;
    } catch (err) {
      if (err instanceof ChangeConditionFailed) return false;
      throw err;
    }
  }

  /**
   * Runs `items` in one transaction with the next audit event and the head move on the tenant.
   * A lost race on the head (another change landed first) is retried with the new head.
   */
  private async withAudit(
    tenantId: string,
    input: AuditEventInput,
    items: () => TransactItems,
    tenantUpdate?: { set: string; values: Record<string, unknown>; names?: Record<string, string> },
  ): Promise<void> {
    for (let attempt = 0; attempt < AUDIT_RETRIES; attempt++) {
      const tenant = await this.getTenant(tenantId);
      if (!tenant) throw new ConflictError(`Tenant '${tenantId}' does not exist.`);
      const event = nextAuditEvent(tenantId, { seq: tenant.auditSeq, hash: tenant.auditHead }, input, this.clock.now());
      const change = items();
      const head: TransactItems[number] = {
        Update: {
          TableName: this.tables.tenants,
          Key: tenantKey(tenantId),
          UpdateExpression: `SET auditSeq = :seq, auditHead = :hash${tenantUpdate ? `, ${tenantUpdate.set}` : ''}`,
          ConditionExpression: 'auditSeq = :prev',
          ExpressionAttributeValues: { ':seq': event.seq, ':hash': event.hash, ':prev': tenant.auditSeq, ...tenantUpdate?.values },
          ...(tenantUpdate?.names ? { ExpressionAttributeNames: tenantUpdate.names } : {}),
        },
      };
      const auditPut = { Put: { TableName: this.tables.audit, Item: { ...event }, ConditionExpression: 'attribute_not_exists(seq)' } };
      try {
        await this.doc.send(new TransactWriteCommand({ TransactItems: [...change, head, auditPut] }));
        return;
      } catch (err) {
        const failed = failedConditions(err);
        if (!failed || failed.length === 0) throw err;
        if (failed.some((i) => i < change.length)) throw new ChangeConditionFailed();
        // Only the head or the audit slot: another change won the race; retry on the new head.
      }
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
