/**
 * The rpc seam (aws-rpc.ts) over AWS SDK v3 clients, for the callers that construct the router's
 * adapters with SDK clients (vault, admin, the local moto backend, tests: their middleware, fault
 * injection and call counting keep working). Each operation the adapters send maps to its SDK
 * command; the wire form's base64 blobs become bytes on the way in and base64 on the way out, so
 * both implementations answer alike (test/contract/aws-rpc.contract.test.ts). Never on the
 * deployed router's path: it is given lean clients. Loading this module registers it with the
 * seam (aws-rpc.ts registerSdkRpc).
 */
import {
  BatchGetItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  TransactWriteItemsCommand,
  type AttributeValue,
} from '@aws-sdk/client-dynamodb';
import { DecryptCommand, GenerateDataKeyCommand } from '@aws-sdk/client-kms';
import { GetSecretValueCommand, PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { registerSdkRpc, type AwsJsonService, type AwsRpc, type SdkClientLike } from './aws-rpc';

type Json = Record<string, unknown>;
type Item = Record<string, unknown>;

const bytes = (b64: unknown) => (typeof b64 === 'string' ? new Uint8Array(Buffer.from(b64, 'base64')) : b64);
const b64 = (u: unknown) => (u instanceof Uint8Array ? Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64') : u);

/** Wire AttributeValue → SDK AttributeValue (B and BS as bytes), recursively. */
function avIn(v: Json): AttributeValue {
  if ('B' in v) return { B: bytes(v.B) as Uint8Array };
  if ('BS' in v) return { BS: (v.BS as string[]).map((x) => bytes(x) as Uint8Array) };
  if ('L' in v) return { L: (v.L as Json[]).map(avIn) };
  if ('M' in v) return { M: itemIn(v.M as Item)! };
  return v as unknown as AttributeValue;
}
function avOut(v: Json): Json {
  if ('B' in v) return { B: b64(v.B) };
  if ('BS' in v) return { BS: (v.BS as Uint8Array[]).map(b64) };
  if ('L' in v) return { L: (v.L as Json[]).map(avOut) };
  if ('M' in v) return { M: itemOut(v.M as Item) };
  return v;
}
const mapValues = <T>(o: Item, f: (v: Json) => T): Record<string, T> => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v as Json)]));
const itemIn = (i: Item | undefined) => (i === undefined ? undefined : (mapValues(i, avIn) as Record<string, AttributeValue>));
const itemOut = (i: Item | undefined) => (i === undefined ? undefined : mapValues(i, avOut));

/** The expression members of Put, Update, Delete, ConditionCheck (and GetItem, PutItem, Query). */
function expressionIn<T extends Json>(e: T): T {
  const out: Json = { ...e };
  for (const k of ['Item', 'Key', 'ExpressionAttributeValues', 'ExclusiveStartKey']) if (out[k] !== undefined) out[k] = itemIn(out[k] as Item);
  return out as T;
}

/** Only defined members: SDK outputs carry `$metadata` and undefined members the wire form lacks. */
function defined(o: Json): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined && k !== '$metadata') out[k] = v;
  return out;
}

const dynamo: Record<string, { in: (i: Json) => object; command: new (i: never) => unknown; out: (o: Json) => Json }> = {
  GetItem: { in: expressionIn, command: GetItemCommand, out: (o) => defined({ ...o, Item: itemOut(o.Item as Item) }) },
  PutItem: { in: expressionIn, command: PutItemCommand, out: (o) => defined({ ...o, Attributes: itemOut(o.Attributes as Item) }) },
  Query: {
    in: expressionIn,
    command: QueryCommand,
    out: (o) => defined({ ...o, Items: (o.Items as Item[] | undefined)?.map(itemOut), LastEvaluatedKey: itemOut(o.LastEvaluatedKey as Item) }),
  },
  BatchGetItem: {
    in: (i) => ({ ...i, RequestItems: mapValues(i.RequestItems as Item, (r) => ({ ...r, Keys: (r.Keys as Item[]).map(itemIn) })) }),
    command: BatchGetItemCommand,
    out: (o) =>
      defined({
        ...o,
        Responses: o.Responses ? mapValues(o.Responses as Item, (rows) => (rows as unknown as Item[]).map(itemOut)) : undefined,
        UnprocessedKeys: o.UnprocessedKeys ? mapValues(o.UnprocessedKeys as Item, (r) => defined({ ...r, Keys: (r.Keys as Item[] | undefined)?.map(itemOut) })) : undefined,
      }),
  },
  TransactWriteItems: {
    in: (i) => ({
      ...i,
      TransactItems: (i.TransactItems as Json[]).map((t) => Object.fromEntries(Object.entries(t).map(([kind, e]) => [kind, expressionIn(e as Json)]))),
    }),
    command: TransactWriteItemsCommand,
    out: defined,
  },
};

/** KMS blobs: base64 on the wire, bytes in the SDK. The SDK's plaintext array is zero-filled once copied. */
function kmsOut(o: Json): Json {
  const out = defined(o);
  for (const k of ['Plaintext', 'CiphertextBlob']) {
    const v = o[k];
    if (v instanceof Uint8Array) {
      out[k] = b64(v);
      v.fill(0);
    }
  }
  return out;
}
/** Timestamps: epoch seconds on the wire, Date in the SDK. */
const epochSeconds = (d: unknown) => (d instanceof Date ? d.getTime() / 1000 : d);
const kms: typeof dynamo = {
  Decrypt: { in: (i) => ({ ...i, CiphertextBlob: bytes(i.CiphertextBlob) }), command: DecryptCommand, out: kmsOut },
  GenerateDataKey: { in: (i) => i, command: GenerateDataKeyCommand, out: kmsOut },
};
const secrets: typeof dynamo = {
  GetSecretValue: { in: (i) => i, command: GetSecretValueCommand, out: (o) => defined({ ...o, SecretBinary: b64(o.SecretBinary), CreatedDate: epochSeconds(o.CreatedDate) }) },
  PutSecretValue: { in: (i) => i, command: PutSecretValueCommand, out: defined },
};
const OPERATIONS: Record<string, typeof dynamo> = { DYNAMODB: dynamo, KMS: kms, SECRETS_MANAGER: secrets };

/** A cancelled transaction's reasons in wire form (their items' binary as base64). */
function errorOut(err: unknown): unknown {
  const reasons = (err as { CancellationReasons?: Json[] } | null)?.CancellationReasons;
  if (Array.isArray(reasons)) {
    (err as { CancellationReasons: Json[] }).CancellationReasons = reasons.map((r) => defined({ ...r, Item: itemOut(r.Item as Item | undefined) }));
  }
  return err;
}

export function sdkRpc(client: SdkClientLike, service: AwsJsonService): AwsRpc {
  const ops = OPERATIONS[service.envId];
  if (!ops) throw new Error(`no SDK operations for ${service.name}`);
  return {
    async send<T>(operation: string, input: object): Promise<T> {
      const op = ops[operation];
      if (!op) throw new Error(`${service.name} ${operation} is not an operation of the rpc seam`);
      let out: unknown;
      try {
        out = await client.send(new op.command(op.in(input as Json) as never) as never);
      } catch (err) {
        throw errorOut(err);
      }
      return op.out(out as Json) as T;
    },
  };
}

registerSdkRpc(sdkRpc);
