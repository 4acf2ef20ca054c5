import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { AwsRpc } from './aws-rpc';
import { counterId, CounterKey } from '../core/router/governance';
import { secretKey, stripKeys, tenantKey } from './tenant-items';
import { moveTokenVerifierItem } from './dynamo-token-verifier';
import { LeanDynamo, type BatchGetRequest } from './dynamo-lean';
import type { VersionedVerifier } from '../core/pepper-ring';
import type { RawItem, RequestContextRead, RouterStore } from '../core/router/router-store';
import { UsageRecord, usageRecordKey } from '../core/router/usage-record';

export interface RouterTableNames {
  readonly tenants: string;
  readonly tokens: string;
  /** Governance counters, read with the request. */
  readonly counters: string;
  /** Usage records, appended after the response. */
  readonly usage: string;
  /** Tenant erasure keys, read in the same BatchGetItem (it spans tables: no extra round trip). */
  readonly erasure: string;
}

/** Usage records are kept for 400 days (a full year of monthly reports plus a margin). */
const USAGE_RETENTION_SECONDS = 400 * 24 * 3600;


export class DynamoRouterStore implements RouterStore {
  private readonly doc: LeanDynamo;

  constructor(
    client: AwsRpc | DynamoDBClient,
    private readonly tables: RouterTableNames,
  ) {
    this.doc = new LeanDynamo(client);
  }

  async loadRequestContext(
    verifier: string,
    tenantId: string,
    providers: readonly string[],
    counterKeys: readonly CounterKey[] = [],
    previousVerifier?: string,
  ): Promise<RequestContextRead> {
    let request: BatchGetRequest | undefined = {
      // During a pepper overlap the token's verifier under the previous pepper too: same call.
      [this.tables.tokens]: { Keys: previousVerifier ? [{ verifier }, { verifier: previousVerifier }] : [{ verifier }], ConsistentRead: true },
      [this.tables.tenants]: {
        Keys: [tenantKey(tenantId), ...providers.map((p) => secretKey(tenantId, p, 'default'))],
        ConsistentRead: true,
      },
      [this.tables.erasure]: { Keys: [{ tenantId }], ConsistentRead: true },
      ...(counterKeys.length > 0
        ? { [this.tables.counters]: { Keys: counterKeys.map((k) => ({ pk: k.pk, sk: k.sk })), ConsistentRead: true } }
        : {}),
    };
    const items: { table: string; item: Record<string, unknown> }[] = [];
    // One call; UnprocessedKeys (throttling) are the only reason for another.
    for (let attempt = 0; request && Object.keys(request).length > 0; attempt++) {
      if (attempt > 5) throw new Error('DynamoDB kept returning unprocessed keys');
      const out = await this.doc.batchGet(request);
      for (const [table, rows] of Object.entries(out.responses)) for (const item of rows) items.push({ table, item });
      request = out.unprocessed;
      if (request && Object.keys(request).length > 0) await new Promise((r) => setTimeout(r, 20 * 2 ** attempt));
    }
    // Nothing is parsed here: the caller authenticates first (a malformed row must look, to an
    // unauthenticated caller, exactly like a healthy one). Secrets are keyed by their sort key.
    let token: RawItem | undefined;
    let previousToken: RawItem | undefined;
    let tenant: RawItem | undefined;
    const secrets = new Map<string, RawItem>();
    const counters = new Map<string, Record<string, unknown>>();
    let erasureKey: RawItem | undefined;
    for (const { table, item } of items) {
      if (table === this.tables.erasure) erasureKey = item;
      else if (table === this.tables.counters) counters.set(counterId({ pk: String(item.pk), sk: String(item.sk) }), item);
      else if (table === this.tables.tokens) {
        // Keyed by the key it was read under (the item's own verifier is compared later).
        if (item.verifier === verifier) token = item;
        else if (previousVerifier !== undefined && item.verifier === previousVerifier) previousToken = item;
      }
      else if (item.sk === 'META') tenant = stripKeys<RawItem>(item);
      else if (typeof item.sk === 'string' && item.sk.startsWith('SECRET#')) secrets.set(item.sk.slice('SECRET#'.length), stripKeys<RawItem>(item));
    }
    return { token, ...(previousToken ? { previousToken } : {}), tenant, secrets, counters, ...(erasureKey ? { erasureKey } : {}) };
  }

  async moveTokenVerifier(item: Readonly<Record<string, unknown>>, to: VersionedVerifier): Promise<boolean> {
    return moveTokenVerifierItem((input) => this.doc.transactWrite(input), this.tables.tokens, item, to);
  }

  async getSecret(tenantId: string, provider: string, name: string): Promise<RawItem | undefined> {
    const item = await this.doc.get({ TableName: this.tables.tenants, Key: secretKey(tenantId, provider, name), ConsistentRead: true });
    return item ? stripKeys<RawItem>(item) : undefined;
  }

  async putUsage(record: UsageRecord): Promise<void> {
    const expiresAt = Math.floor(Date.parse(record.at) / 1000) + USAGE_RETENTION_SECONDS;
    await this.doc.put({ TableName: this.tables.usage, Item: { ...usageRecordKey(record), ...record, expiresAt } });
  }
}
