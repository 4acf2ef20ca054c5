/**
 * The governance ledger on DynamoDB: the counters table (spend, rate windows, reservations), one
 * TransactWriteItems per ledger write. Only the mapping lives here; every decision is in
 * core/governance/ledger-governance.ts, shared with the embedded adapter.
 *
 * - counter update → Update `ADD <field> :v ...  SET expiresAt = if_not_exists(expiresAt, :exp)`,
 *   ceilings → `(attribute_not_exists(f) OR f <= :c) AND ...`, ALL_OLD on a failed condition;
 * - reservation put → Put `attribute_not_exists(pk)`; delete → Delete `attribute_exists(pk)`
 *   [`AND reclaimAfter < :now`].
 * A cancellation for a failed condition is `{ ok: false }` naming the items; one for a concurrent
 * transaction on the same item (TransactionConflict, real DynamoDB only) or throttling is retried
 * with jittered backoff; anything else throws.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { AwsRpc } from './aws-rpc';
import { LeanDynamo, type Doc, type DocTransactItem } from './dynamo-lean';
import { reservationPk } from '../core/governance/keys';
import {
  COUNTER_FIELDS,
  CounterUpdate,
  CounterValues,
  GovernanceLedger,
  LedgerResult,
  LedgerWrite,
  ReservationRecord,
} from '../core/governance/ledger';
import { LedgerGovernance, LedgerGovernanceOptions, microsOfUsd } from '../core/governance/ledger-governance';
import { usageRecordKey } from '../core/router/usage-record';

type TransactItem = DocTransactItem;

export interface DynamoGovernanceLedgerOptions {
  /** The counters table (pk/sk strings, TTL attribute `expiresAt`). */
  readonly table: string;
  /**
   * The table of the router's usage records, read (GetItem) by reclaim for the cost a request
   * recorded when its settle failed for good.
   */
  readonly usageRecordsTable: string;
  /** Retries of a transaction cancelled by a concurrent one (TransactionConflict) or throttling. @default 8 */
  readonly conflictRetries?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
}

export type DynamoGovernanceOptions = DynamoGovernanceLedgerOptions & LedgerGovernanceOptions;

/** Query pages read per reclaim scan. */
const RECLAIM_PAGES = 10;

/** A number attribute of an item, marshalled (`{ N: '1' }`) or not. */
function attrNumber(item: Record<string, unknown> | undefined, name: string): number | undefined {
  const v = item?.[name] as unknown;
  if (typeof v === 'number') return v;
  if (v && typeof v === 'object' && 'N' in v) {
    const n = Number((v as { N: string }).N);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

function counterValues(item: Record<string, unknown> | undefined): CounterValues | undefined {
  if (!item) return undefined;
  const out: CounterValues = {};
  for (const f of COUNTER_FIELDS) {
    const n = attrNumber(item, f);
    if (n !== undefined) out[f] = n;
  }
  return out;
}

export class DynamoGovernanceLedger implements GovernanceLedger {
  private readonly doc: LeanDynamo;
  private readonly table: string;
  private readonly usageRecordsTable: string;
  private readonly conflictRetries: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;

  constructor(client: AwsRpc | DynamoDBClient, opts: DynamoGovernanceLedgerOptions) {
    this.doc = new LeanDynamo(client);
    this.table = opts.table;
    this.usageRecordsTable = opts.usageRecordsTable;
    this.conflictRetries = opts.conflictRetries ?? 8;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.random = opts.random ?? Math.random;
  }

  async write(w: LedgerWrite): Promise<LedgerResult> {
    const items: TransactItem[] = [];
    if (w.reservation) items.push(this.reservationItem(w.reservation));
    const offset = items.length;
    for (const u of w.counters) items.push(this.counterItem(u));
    for (let attempt = 0; ; attempt++) {
      try {
        await this.doc.transactWrite({ TransactItems: items, ClientRequestToken: w.idempotencyToken });
        return { ok: true };
      } catch (err) {
        const e = err as { name?: string; CancellationReasons?: { Code?: string; Item?: Record<string, unknown> }[] };
        if (e?.name !== 'TransactionCanceledException') throw err;
        const reasons = e.CancellationReasons ?? [];
        if (reasons.some((r) => r.Code === 'ConditionalCheckFailed')) {
          const failedAt = (i: number) => reasons[i]?.Code === 'ConditionalCheckFailed';
          return {
            ok: false,
            reservationFailed: offset === 1 && failedAt(0),
            failed: w.counters.flatMap((_, i) => (failedAt(offset + i) ? [{ index: i, item: counterValues(reasons[offset + i].Item) }] : [])),
          };
        }
        const transient = reasons.some((r) => r.Code === 'TransactionConflict' || r.Code === 'ThrottlingError' || r.Code === 'ProvisionedThroughputExceeded');
        if (!transient || attempt >= this.conflictRetries) throw err;
        await this.sleep(Math.floor(this.random() * Math.min(500, 10 * 2 ** attempt)) + 1);
      }
    }
  }

  async expiredReservations(tenantId: string, nowSec: number, limit: number): Promise<ReservationRecord[]> {
    const out: ReservationRecord[] = [];
    let start: Doc | undefined;
    for (let page = 0; page < RECLAIM_PAGES && out.length < limit; page++) {
      const res = await this.doc.query({
        TableName: this.table,
        KeyConditionExpression: 'pk = :pk',
        FilterExpression: 'reclaimAfter < :now',
        ExpressionAttributeValues: { ':pk': reservationPk(tenantId), ':now': nowSec },
        ConsistentRead: true,
        ExclusiveStartKey: start,
      });
      for (const item of res.items) {
        const r = reservationOf(item);
        if (r && out.length < limit) out.push(r);
      }
      start = res.lastKey;
      if (!start) break;
    }
    return out;
  }

  async recordedCostMicros(r: ReservationRecord): Promise<number> {
    if (!r.createdAt) return 0;
    const item = await this.doc.get({
      TableName: this.usageRecordsTable,
      Key: usageRecordKey({ tenantId: r.tenantId, at: r.createdAt, requestId: r.key.sk }),
      ProjectionExpression: 'costUsd',
      ConsistentRead: true,
    });
    return microsOfUsd(item?.costUsd);
  }

  private reservationItem(change: NonNullable<LedgerWrite['reservation']>): TransactItem {
    if ('put' in change) {
      const { key, ...rest } = change.put;
      return { Put: { TableName: this.table, Item: { ...key, ...rest }, ConditionExpression: 'attribute_not_exists(pk)' } };
    }
    return {
      Delete: {
        TableName: this.table,
        Key: { pk: change.delete.pk, sk: change.delete.sk },
        ...(change.reclaimableAt !== undefined
          ? { ConditionExpression: 'attribute_exists(pk) AND reclaimAfter < :now', ExpressionAttributeValues: { ':now': change.reclaimableAt } }
          : { ConditionExpression: 'attribute_exists(pk)' }),
      },
    };
  }

  private counterItem(u: CounterUpdate): TransactItem {
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const adds: string[] = [];
    for (const f of COUNTER_FIELDS) {
      const v = u.add[f];
      if (v === undefined) continue;
      names[`#${f}`] = f;
      values[`:${f}`] = v;
      adds.push(`#${f} :${f}`);
    }
    const sets: string[] = [];
    if (u.expiresAt !== undefined) {
      values[':exp'] = u.expiresAt;
      sets.push('expiresAt = if_not_exists(expiresAt, :exp)');
    }
    if (u.tokenId !== undefined) {
      values[':tid'] = u.tokenId;
      sets.push('tokenId = :tid');
    }
    const conditions: string[] = [];
    for (const f of COUNTER_FIELDS) {
      const c = u.ceilings?.[f];
      if (c === undefined) continue;
      names[`#${f}`] = f;
      values[`:${f}Ceiling`] = c;
      conditions.push(`(attribute_not_exists(#${f}) OR #${f} <= :${f}Ceiling)`);
    }
    const expression = [adds.length ? `ADD ${adds.join(', ')}` : '', sets.length ? `SET ${sets.join(', ')}` : ''].filter(Boolean).join(' ');
    return {
      Update: {
        TableName: this.table,
        Key: { pk: u.key.pk, sk: u.key.sk },
        UpdateExpression: expression,
        ...(conditions.length ? { ConditionExpression: conditions.join(' AND '), ReturnValuesOnConditionCheckFailure: 'ALL_OLD' as const } : {}),
        ...(Object.keys(names).length ? { ExpressionAttributeNames: names } : {}),
        ExpressionAttributeValues: values,
      },
    };
  }
}

/** A stored reservation, or undefined for an item that is not one (malformed rows are skipped). */
function reservationOf(item: Record<string, unknown>): ReservationRecord | undefined {
  const str = (k: string) => (typeof item[k] === 'string' ? (item[k] as string) : undefined);
  const n = (k: string) => attrNumber(item, k);
  const pk = str('pk');
  const sk = str('sk');
  const tokenKey = str('tokenKey');
  const period = str('period');
  const amountMicros = n('amountMicros');
  const reclaimAfter = n('reclaimAfter');
  if (!pk || !sk || !tokenKey || !period || amountMicros === undefined || reclaimAfter === undefined) return undefined;
  return {
    key: { pk, sk },
    tenantId: str('tenantId') ?? '',
    tokenId: str('tokenId') ?? '',
    tokenKey,
    period,
    window: str('window') ?? '',
    amountMicros,
    tpmTokens: n('tpmTokens') ?? 0,
    model: str('model') ?? '',
    createdAt: str('createdAt') ?? '',
    reclaimAfter,
    expiresAt: n('expiresAt') ?? 0,
  };
}

/** Governance on the cell's counters table: the shared core over the DynamoDB ledger. */
export class DynamoGovernance extends LedgerGovernance {
  constructor(client: AwsRpc | DynamoDBClient, opts: DynamoGovernanceOptions) {
    super(new DynamoGovernanceLedger(client, opts), opts);
  }
}
