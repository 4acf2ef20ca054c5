/**
 * The rpc seam (lambda/adapters/aws-rpc.ts) against moto through both implementations: the lean
 * JSON-protocol client the deployed router uses, and the SDK clients the vault, admin, local
 * backend and tests hand the same adapters. Same operations, same answers and errors in wire form,
 * and what one writes the other reads back identically, so the two cannot drift.
 */
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { CreateKeyCommand } from '@aws-sdk/client-kms';
import { CreateSecretCommand, PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { AwsJsonClient, DYNAMODB, KMS, SECRETS_MANAGER } from '../../lambda/adapters/aws-json-client';
import { AwsServiceError } from '../../lambda/adapters/aws-json-errors';
import type { AwsRpc } from '../../lambda/adapters/aws-rpc';
import { sdkRpc } from '../../lambda/adapters/aws-sdk-rpc';
import { LeanDynamo } from '../../lambda/adapters/dynamo-lean';
import { awsClients, testCredentials, type AwsTestClients } from '../support/aws-clients';
import { canaryHits, makeCanary, renderAll } from '../support/canary';
import { startMoto, type MotoServer } from '../support/moto';
import { rejectionOf } from '../support/vault-client';

const REGION = 'eu-west-1';
const TABLE = 'rpc-contract';
const CONTEXT = { app: 'sovereign-router', tenant: 't-rpc', secret: 'default' };

let moto: MotoServer;
let sdk: AwsTestClients;
let keyA: string;
let keyB: string;
let secretId: string;
const rpcs: Record<'lean' | 'sdk', { ddb: AwsRpc; kms: AwsRpc; secrets: AwsRpc }> = {} as never;

beforeAll(async () => {
  moto = await startMoto();
  sdk = awsClients(moto.endpoint, REGION);
  const lean = (service: typeof DYNAMODB) => new AwsJsonClient(service, { region: REGION, endpoint: moto.endpoint, credentials: testCredentials, maxAttempts: 2 });
  rpcs.lean = { ddb: lean(DYNAMODB), kms: lean(KMS), secrets: lean(SECRETS_MANAGER) };
  rpcs.sdk = { ddb: sdkRpc(sdk.ddb, DYNAMODB), kms: sdkRpc(sdk.kms, KMS), secrets: sdkRpc(sdk.secrets, SECRETS_MANAGER) };
  await sdk.ddb.send(
    new CreateTableCommand({
      TableName: TABLE,
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
    }),
  );
  const key = async () => (await sdk.kms.send(new CreateKeyCommand({ KeySpec: 'SYMMETRIC_DEFAULT', KeyUsage: 'ENCRYPT_DECRYPT' }))).KeyMetadata!.Arn!;
  keyA = await key();
  keyB = await key();
  secretId = (await sdk.secrets.send(new CreateSecretCommand({ Name: 'rpc-contract/pepper', SecretString: 'first-version' }))).ARN!;
  await sdk.secrets.send(new PutSecretValueCommand({ SecretId: secretId, SecretString: 'second-version' }));
}, 120_000);
afterAll(() => moto?.stop());

async function failure(p: Promise<unknown>): Promise<AwsServiceError & Record<string, any>> {
  const err = await rejectionOf(p);
  expect(err).toBeInstanceOf(Error);
  return err as AwsServiceError & Record<string, any>;
}

/** A binary attribute with every byte value, nested in a map and a list, plus a binary set. */
const BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const richItem = (pk: string) => ({
  pk: { S: pk },
  sk: { S: 'item' },
  blob: { B: BYTES.toString('base64') },
  blobs: { BS: [Buffer.from('a').toString('base64'), Buffer.from('b').toString('base64')] },
  nested: { M: { inner: { L: [{ B: Buffer.from([0, 255]).toString('base64') }, { N: '9007199254740993' }, { NULL: true }, { BOOL: false }] } } },
  names: { SS: ['x', 'y'] },
  cost: { N: '0.000125' },
});

describe.each(['lean', 'sdk'] as const)('the rpc seam through the %s implementation', (impl) => {
  const rpc = () => rpcs[impl];
  const other = () => rpcs[impl === 'lean' ? 'sdk' : 'lean'];

  test('GetItem of a missing item answers without Item', async () => {
    const out = await rpc().ddb.send('GetItem', { TableName: TABLE, Key: { pk: { S: `${impl}-missing` }, sk: { S: 'none' } }, ConsistentRead: true });
    expect(out.Item).toBeUndefined();
  });

  test('binary, sets, nested lists and big numbers round-trip in wire form, and read back alike through the other implementation', async () => {
    const item = richItem(`${impl}-rich`);
    await rpc().ddb.send('PutItem', { TableName: TABLE, Item: item });
    const key = { pk: item.pk, sk: item.sk };
    const mine = await rpc().ddb.send<{ Item: Record<string, unknown> }>('GetItem', { TableName: TABLE, Key: key, ConsistentRead: true });
    const theirs = await other().ddb.send<{ Item: Record<string, unknown> }>('GetItem', { TableName: TABLE, Key: key, ConsistentRead: true });
    // Sets come back in any order.
    const sorted = (i: Record<string, any>) => ({ ...i, blobs: { BS: [...i.blobs.BS].sort() }, names: { SS: [...i.names.SS].sort() } });
    expect(sorted(mine.Item)).toEqual(sorted(item));
    expect(sorted(theirs.Item)).toEqual(sorted(item));
    // And as documents (LeanDynamo over either): bytes as Buffers, the big integer as a bigint.
    const doc = await new LeanDynamo(rpc().ddb).get({ TableName: TABLE, Key: { pk: `${impl}-rich`, sk: 'item' }, ConsistentRead: true });
    expect(Buffer.compare(doc!.blob as Buffer, BYTES)).toBe(0);
    expect((doc!.nested as any).inner[1]).toBe(9007199254740993n);
  });

  test('a conditional PutItem that fails is ConditionalCheckFailedException, a client fault, with no item value in its message', async () => {
    const canary = makeCanary(impl);
    const item = { pk: { S: `${impl}-cond` }, sk: { S: 'item' }, secret: { S: canary } };
    await rpc().ddb.send('PutItem', { TableName: TABLE, Item: item });
    const err = await failure(rpc().ddb.send('PutItem', { TableName: TABLE, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
    expect(err.name).toBe('ConditionalCheckFailedException');
    expect(err.$fault).toBe('client');
    expect(err.$metadata.httpStatusCode).toBe(400);
    expect(canaryHits(renderAll(err), [canary])).toEqual([]);
  });

  test('a cancelled TransactWriteItems names the failed item: CancellationReasons in order, the old item in wire form', async () => {
    const pk = `${impl}-txn`;
    await rpc().ddb.send('PutItem', { TableName: TABLE, Item: { pk: { S: pk }, sk: { S: 'counter' }, spent: { N: '7' }, tag: { B: Buffer.from('tag').toString('base64') } } });
    const err = await failure(
      rpc().ddb.send('TransactWriteItems', {
        TransactItems: [
          { Put: { TableName: TABLE, Item: { pk: { S: pk }, sk: { S: 'fresh' } }, ConditionExpression: 'attribute_not_exists(pk)' } },
          {
            Update: {
              TableName: TABLE,
              Key: { pk: { S: pk }, sk: { S: 'counter' } },
              UpdateExpression: 'ADD spent :v',
              ConditionExpression: 'spent <= :c',
              ExpressionAttributeValues: { ':v': { N: '1' }, ':c': { N: '5' } },
              ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
            },
          },
        ],
        ClientRequestToken: `${impl}-token-0000000000001`,
      }),
    );
    expect(err.name).toBe('TransactionCanceledException');
    expect(err.CancellationReasons.map((r: { Code: string }) => r.Code)).toEqual(['None', 'ConditionalCheckFailed']);
    expect(err.CancellationReasons[1].Item).toEqual({ pk: { S: pk }, sk: { S: 'counter' }, spent: { N: '7' }, tag: { B: Buffer.from('tag').toString('base64') } });
    // Nothing was written.
    const fresh = await rpc().ddb.send('GetItem', { TableName: TABLE, Key: { pk: { S: pk }, sk: { S: 'fresh' } }, ConsistentRead: true });
    expect(fresh.Item).toBeUndefined();
  });

  test('BatchGetItem across keys, some missing: only the present items, nothing unprocessed', async () => {
    const pk = `${impl}-batch`;
    for (const sk of ['a', 'b']) await rpc().ddb.send('PutItem', { TableName: TABLE, Item: { pk: { S: pk }, sk: { S: sk }, v: { S: sk } } });
    const keys = ['a', 'missing', 'b'].map((sk) => ({ pk: { S: pk }, sk: { S: sk } }));
    const out = await rpc().ddb.send<{ Responses: Record<string, any[]>; UnprocessedKeys?: Record<string, unknown> }>('BatchGetItem', { RequestItems: { [TABLE]: { Keys: keys, ConsistentRead: true } } });
    expect(out.Responses[TABLE].map((i) => i.v.S).sort()).toEqual(['a', 'b']);
    expect(Object.keys(out.UnprocessedKeys ?? {})).toEqual([]);
  });

  test('a validation error is named, a client fault, and not retried', async () => {
    const err = await failure(rpc().ddb.send('GetItem', { TableName: TABLE, Key: { pk: { S: 'only-half-the-key' } } }));
    expect(err.name).toBe('ValidationException');
    expect(err.$fault).toBe('client');
  });

  test('KMS: GenerateDataKey then Decrypt under the same context and key; a wrong context or key fails by name', async () => {
    const gen = await rpc().kms.send<{ Plaintext: string; CiphertextBlob: string; KeyId: string }>('GenerateDataKey', { KeyId: keyA, KeySpec: 'AES_256', EncryptionContext: CONTEXT });
    expect(Buffer.from(gen.Plaintext, 'base64')).toHaveLength(32);
    expect(gen.KeyId).toBe(keyA);
    // Wrapped by one implementation, opened by either.
    for (const r of [rpc(), other()]) {
      const dec = await r.kms.send<{ Plaintext: string; KeyId: string }>('Decrypt', { CiphertextBlob: gen.CiphertextBlob, EncryptionContext: CONTEXT, KeyId: keyA });
      expect(dec).toMatchObject({ Plaintext: gen.Plaintext, KeyId: keyA });
    }
    const wrongContext = await failure(rpc().kms.send('Decrypt', { CiphertextBlob: gen.CiphertextBlob, EncryptionContext: { ...CONTEXT, tenant: 't-other' }, KeyId: keyA }));
    expect(wrongContext.name).toBe('InvalidCiphertextException');
    const wrongKey = await failure(rpc().kms.send('Decrypt', { CiphertextBlob: gen.CiphertextBlob, EncryptionContext: CONTEXT, KeyId: keyB }));
    // Real KMS says IncorrectKeyException, moto AccessDeniedException; KmsDataKeyService maps both to 'denied'.
    expect(wrongKey.name).toBe('AccessDeniedException');
    for (const e of [wrongContext, wrongKey]) {
      expect(e.$fault).toBe('client');
      expect(renderAll(e)).not.toContain(gen.CiphertextBlob);
      expect(renderAll(e)).not.toContain(gen.Plaintext);
    }
  });

  test('Secrets Manager: GetSecretValue by stage (current and previous); a missing secret is ResourceNotFoundException', async () => {
    const current = await rpc().secrets.send<{ SecretString: string; VersionStages: string[] }>('GetSecretValue', { SecretId: secretId });
    expect(current.SecretString).toBe('second-version');
    expect(current.VersionStages).toContain('AWSCURRENT');
    const previous = await rpc().secrets.send<{ SecretString: string }>('GetSecretValue', { SecretId: secretId, VersionStage: 'AWSPREVIOUS' });
    expect(previous.SecretString).toBe('first-version');
    const missing = await failure(rpc().secrets.send('GetSecretValue', { SecretId: 'rpc-contract/none' }));
    expect(missing.name).toBe('ResourceNotFoundException');
    expect(renderAll(missing)).not.toContain('second-version');
  });
});
