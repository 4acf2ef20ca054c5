/**
 * The DynamoDB document operations of the router's adapters, marshalled with
 * `@aws-sdk/util-dynamodb` (the library lib-dynamodb's document client uses, with the same
 * `removeUndefinedValues` option) over the base client's commands. The document client adds a
 * marshalling middleware to every command and refuses clients built with `cacheMiddleware`;
 * without it the router's client builds each command's middleware chain once (about a third of
 * the SDK's CPU per call, measured by `npm run bench`).
 *
 * Errors are the SDK's own; a TransactionCanceledException's CancellationReasons keep their raw
 * AttributeValue items, as with the document client.
 */
import {
  BatchGetItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  TransactWriteItemsCommand,
  type AttributeValue,
  type DynamoDBClient,
  type TransactWriteItem,
} from '@aws-sdk/client-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';

export type Doc = Record<string, unknown>;
type Raw = Record<string, AttributeValue>;

const toRaw = (item: Doc): Raw => marshall(item, { removeUndefinedValues: true });
const toRawOpt = (item: Doc | undefined): Raw | undefined => (item === undefined ? undefined : toRaw(item));
const toDoc = (raw: Raw): Doc => unmarshall(raw);

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

function expressionToRaw(e: DocExpression) {
  return {
    TableName: e.TableName,
    ...(e.ConditionExpression !== undefined ? { ConditionExpression: e.ConditionExpression } : {}),
    ...(e.ExpressionAttributeNames !== undefined ? { ExpressionAttributeNames: e.ExpressionAttributeNames } : {}),
    ...(e.ExpressionAttributeValues !== undefined ? { ExpressionAttributeValues: toRaw(e.ExpressionAttributeValues) } : {}),
    ...(e.ReturnValuesOnConditionCheckFailure !== undefined ? { ReturnValuesOnConditionCheckFailure: e.ReturnValuesOnConditionCheckFailure } : {}),
  };
}

function transactItemToRaw(t: DocTransactItem): TransactWriteItem {
  if ('Put' in t) return { Put: { ...expressionToRaw(t.Put), Item: toRaw(t.Put.Item) } };
  if ('Update' in t) return { Update: { ...expressionToRaw(t.Update), Key: toRaw(t.Update.Key), UpdateExpression: t.Update.UpdateExpression } };
  if ('Delete' in t) return { Delete: { ...expressionToRaw(t.Delete), Key: toRaw(t.Delete.Key) } };
  return { ConditionCheck: { ...expressionToRaw(t.ConditionCheck), Key: toRaw(t.ConditionCheck.Key), ConditionExpression: t.ConditionCheck.ConditionExpression ?? '' } };
}

export type BatchGetRequest = Record<string, { Keys: Doc[]; ConsistentRead?: boolean }>;

export class LeanDynamo {
  constructor(readonly client: DynamoDBClient) {}

  /** One BatchGetItem: items per table, and the keys DynamoDB left unprocessed (same form as the request). */
  async batchGet(request: BatchGetRequest): Promise<{ responses: Record<string, Doc[]>; unprocessed?: BatchGetRequest }> {
    const RequestItems = Object.fromEntries(Object.entries(request).map(([table, r]) => [table, { Keys: r.Keys.map(toRaw), ConsistentRead: r.ConsistentRead }]));
    const out = await this.client.send(new BatchGetItemCommand({ RequestItems }));
    const responses = Object.fromEntries(Object.entries(out.Responses ?? {}).map(([table, rows]) => [table, rows.map(toDoc)]));
    const left = Object.entries(out.UnprocessedKeys ?? {}).filter(([, r]) => (r.Keys?.length ?? 0) > 0);
    return {
      responses,
      ...(left.length > 0 ? { unprocessed: Object.fromEntries(left.map(([table, r]) => [table, { Keys: (r.Keys ?? []).map(toDoc), ConsistentRead: r.ConsistentRead }])) } : {}),
    };
  }

  async get(input: { TableName: string; Key: Doc; ConsistentRead?: boolean; ProjectionExpression?: string }): Promise<Doc | undefined> {
    const out = await this.client.send(new GetItemCommand({ ...input, Key: toRaw(input.Key) }));
    return out.Item ? toDoc(out.Item) : undefined;
  }

  async put(input: { TableName: string; Item: Doc }): Promise<void> {
    await this.client.send(new PutItemCommand({ TableName: input.TableName, Item: toRaw(input.Item) }));
  }

  async transactWrite(input: { TransactItems: readonly DocTransactItem[]; ClientRequestToken?: string }): Promise<void> {
    await this.client.send(new TransactWriteItemsCommand({ TransactItems: input.TransactItems.map(transactItemToRaw), ClientRequestToken: input.ClientRequestToken }));
  }

  async query(input: {
    TableName: string;
    KeyConditionExpression: string;
    FilterExpression?: string;
    ExpressionAttributeValues: Doc;
    ConsistentRead?: boolean;
    ExclusiveStartKey?: Doc;
  }): Promise<{ items: Doc[]; lastKey?: Doc }> {
    const out = await this.client.send(
      new QueryCommand({ ...input, ExpressionAttributeValues: toRaw(input.ExpressionAttributeValues), ExclusiveStartKey: toRawOpt(input.ExclusiveStartKey) }),
    );
    return { items: (out.Items ?? []).map(toDoc), ...(out.LastEvaluatedKey ? { lastKey: toDoc(out.LastEvaluatedKey) } : {}) };
  }
}
