/**
 * The DynamoDB document operations of the router's adapters over the rpc seam (aws-rpc.ts):
 * documents are marshalled straight to and from DynamoDB's wire JSON (dynamo-json.ts, the rules
 * of util-dynamodb with `removeUndefinedValues`), then sent by the lean client (the deployed
 * router) or an SDK client (vault, admin, local, tests).
 *
 * Errors are the service's, named by code; a TransactionCanceledException's CancellationReasons
 * keep their raw (wire) AttributeValue items.
 */
import { randomUUID } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DYNAMODB, rpcOf, type AwsRpc } from './aws-rpc';
import { fromWireItem, toWireItem, type Doc, type WireItem } from './dynamo-json';

export type { Doc } from './dynamo-json';

/** Expression fields shared by Put, Update, Delete and ConditionCheck, in document form. */
interface DocExpression {
  readonly TableName: string;
  readonly ConditionExpression?: string;
  readonly ExpressionAttributeNames?: Record<string, string>;
  readonly ExpressionAttributeValues?: Doc;
  readonly ReturnValuesOnConditionCheckFailure?: 'ALL_OLD' | 'NONE';
}
/** One item of a document-form TransactWriteItems (the shape lib-dynamodb's TransactWriteCommand takes). */
export type DocTransactItem =
  | { readonly Put: DocExpression & { readonly Item: Doc } }
  | { readonly Update: DocExpression & { readonly Key: Doc; readonly UpdateExpression: string } }
  | { readonly Delete: DocExpression & { readonly Key: Doc } }
  | { readonly ConditionCheck: DocExpression & { readonly Key: Doc } };

function expressionToWire(e: DocExpression): Record<string, unknown> {
  const out: Record<string, unknown> = { TableName: e.TableName };
  if (e.ConditionExpression !== undefined) out.ConditionExpression = e.ConditionExpression;
  if (e.ExpressionAttributeNames !== undefined) out.ExpressionAttributeNames = e.ExpressionAttributeNames;
  if (e.ExpressionAttributeValues !== undefined) out.ExpressionAttributeValues = toWireItem(e.ExpressionAttributeValues);
  if (e.ReturnValuesOnConditionCheckFailure !== undefined) out.ReturnValuesOnConditionCheckFailure = e.ReturnValuesOnConditionCheckFailure;
  return out;
}

function transactItemToWire(t: DocTransactItem): Record<string, unknown> {
  if ('Put' in t) return { Put: { ...expressionToWire(t.Put), Item: toWireItem(t.Put.Item) } };
  if ('Update' in t) return { Update: { ...expressionToWire(t.Update), Key: toWireItem(t.Update.Key), UpdateExpression: t.Update.UpdateExpression } };
  if ('Delete' in t) return { Delete: { ...expressionToWire(t.Delete), Key: toWireItem(t.Delete.Key) } };
  return { ConditionCheck: { ...expressionToWire(t.ConditionCheck), Key: toWireItem(t.ConditionCheck.Key), ConditionExpression: t.ConditionCheck.ConditionExpression ?? '' } };
}

export type BatchGetRequest = Record<string, { Keys: Doc[]; ConsistentRead?: boolean }>;
type WireBatchGet = Record<string, { Keys?: WireItem[]; ConsistentRead?: boolean }>;

export class LeanDynamo {
  readonly rpc: AwsRpc;

  /** The lean client (aws-json-client.ts) or any rpc; an SDK DynamoDBClient still works (aws-sdk-rpc.ts). */
  constructor(client: AwsRpc | DynamoDBClient) {
    this.rpc = rpcOf(client, DYNAMODB);
  }

  /** One BatchGetItem: items per table, and the keys DynamoDB left unprocessed (same form as the request). */
  async batchGet(request: BatchGetRequest): Promise<{ responses: Record<string, Doc[]>; unprocessed?: BatchGetRequest }> {
    const RequestItems: WireBatchGet = {};
    for (const [table, r] of Object.entries(request)) RequestItems[table] = { Keys: r.Keys.map(toWireItem), ...(r.ConsistentRead !== undefined ? { ConsistentRead: r.ConsistentRead } : {}) };
    const out = await this.rpc.send<{ Responses?: Record<string, WireItem[]>; UnprocessedKeys?: WireBatchGet }>('BatchGetItem', { RequestItems });
    const responses: Record<string, Doc[]> = {};
    for (const [table, rows] of Object.entries(out.Responses ?? {})) responses[table] = rows.map(fromWireItem);
    const left = Object.entries(out.UnprocessedKeys ?? {}).filter(([, r]) => (r.Keys?.length ?? 0) > 0);
    return {
      responses,
      ...(left.length > 0 ? { unprocessed: Object.fromEntries(left.map(([table, r]) => [table, { Keys: (r.Keys ?? []).map(fromWireItem), ConsistentRead: r.ConsistentRead }])) } : {}),
    };
  }

  async get(input: { TableName: string; Key: Doc; ConsistentRead?: boolean; ProjectionExpression?: string }): Promise<Doc | undefined> {
    const out = await this.rpc.send<{ Item?: WireItem }>('GetItem', { ...input, Key: toWireItem(input.Key) });
    return out.Item ? fromWireItem(out.Item) : undefined;
  }

  async put(input: { TableName: string; Item: Doc; ConditionExpression?: string }): Promise<void> {
    await this.rpc.send('PutItem', { ...input, Item: toWireItem(input.Item) });
  }

  /**
   * Without a caller's token, one is made, as the SDK's serializer does (ClientRequestToken is an
   * idempotency token): the client retries a timed-out or reset call, and the first attempt may
   * have committed; with the same token DynamoDB answers the retry as the first, without it the
   * write would run twice (or fail its own condition and read as refused).
   */
  async transactWrite(input: { TransactItems: readonly DocTransactItem[]; ClientRequestToken?: string }): Promise<void> {
    await this.rpc.send('TransactWriteItems', {
      TransactItems: input.TransactItems.map(transactItemToWire),
      ClientRequestToken: input.ClientRequestToken ?? randomUUID(),
    });
  }

  async query(input: {
    TableName: string;
    KeyConditionExpression: string;
    FilterExpression?: string;
    ExpressionAttributeValues: Doc;
    ConsistentRead?: boolean;
    ExclusiveStartKey?: Doc;
  }): Promise<{ items: Doc[]; lastKey?: Doc }> {
    const { ExclusiveStartKey, ...rest } = input;
    const out = await this.rpc.send<{ Items?: WireItem[]; LastEvaluatedKey?: WireItem }>('Query', {
      ...rest,
      ExpressionAttributeValues: toWireItem(input.ExpressionAttributeValues),
      ...(ExclusiveStartKey ? { ExclusiveStartKey: toWireItem(ExclusiveStartKey) } : {}),
    });
    return { items: (out.Items ?? []).map(fromWireItem), ...(out.LastEvaluatedKey ? { lastKey: fromWireItem(out.LastEvaluatedKey) } : {}) };
  }
}
