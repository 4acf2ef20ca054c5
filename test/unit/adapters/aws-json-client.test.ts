/**
 * The lean AWS JSON-protocol client (lambda/adapters/aws-json-client.ts) against a loopback server
 * that checks SigV4 from first principles (the signer under test is not used to verify itself) and
 * answers as scripted: endpoints, retries within the call budget (throttling, 5xx, connection
 * resets, a KMS that hangs), no retry of final errors, clock-skew correction, error mapping by
 * name, and no credential, plaintext or service message in any error.
 */
import { createHash, createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { AwsJsonClient, DYNAMODB, KMS, MAX_BACKOFF_MS, resolveEndpoint, SECRETS_MANAGER, type RequestHandlerLike } from '../../../lambda/adapters/aws-json-client';
import { AwsServiceError, sanitizeErrorCode } from '../../../lambda/adapters/aws-json-errors';
import { LeanDynamo } from '../../../lambda/adapters/dynamo-lean';
import { KeyServiceError, KmsDataKeyService } from '../../../lambda/adapters/kms-data-key-service';
import { awsCallBudget, leanClients, worstCaseCallMs } from '../../../lambda/handlers/aws-clients';
import { canaryHits, makeCanary, renderAll } from '../../support/canary';
import { rejectionOf } from '../../support/vault-client';

const SECRET_KEY = makeCanary('secretkey');
const SESSION_TOKEN = makeCanary('session');
const CREDENTIALS = { accessKeyId: 'AKIDLEANTEST', secretAccessKey: SECRET_KEY, sessionToken: SESSION_TOKEN };
const REGION = 'eu-central-1';

interface Seen {
  target: string;
  amzDate: string;
  body: string;
  /** Why the signature is wrong, or undefined when it verifies. */
  sigProblem?: string;
  service?: string;
  signedHeaders?: string[];
}
type Behavior = (req: IncomingMessage, res: ServerResponse) => void;

let server: Server;
let endpoint: string;
const seen: Seen[] = [];
let script: Behavior[] = [];
/** Server clock offset used to check x-amz-date (clock-skew tests). */
let serverClockOffsetMs = 0;
const sockets = new Set<import('node:net').Socket>();

/** SigV4 verified from first principles (as test/support/fake-bedrock.ts does for Bedrock). */
function verify(req: IncomingMessage, body: string): Pick<Seen, 'sigProblem' | 'service' | 'signedHeaders'> {
  const m = /^AWS4-HMAC-SHA256 Credential=([A-Z0-9]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(req.headers.authorization ?? '');
  if (!m) return { sigProblem: 'malformed Authorization' };
  const [, accessKeyId, date, region, service, signedHeaderList, signature] = m;
  const signedHeaders = signedHeaderList.split(';');
  const out = { service, signedHeaders };
  if (accessKeyId !== CREDENTIALS.accessKeyId || region !== REGION) return { ...out, sigProblem: 'wrong scope' };
  for (const h of ['host', 'x-amz-date', 'x-amz-security-token', 'x-amz-target', 'content-type']) if (!signedHeaders.includes(h)) return { ...out, sigProblem: `unsigned ${h}` };
  if (req.headers['x-amz-security-token'] !== SESSION_TOKEN) return { ...out, sigProblem: 'wrong token' };
  const amzDate = String(req.headers['x-amz-date']);
  const at = Date.UTC(+amzDate.slice(0, 4), +amzDate.slice(4, 6) - 1, +amzDate.slice(6, 8), +amzDate.slice(9, 11), +amzDate.slice(11, 13), +amzDate.slice(13, 15));
  if (Math.abs(Date.now() + serverClockOffsetMs - at) > 5 * 60_000) return { ...out, sigProblem: 'skewed' };
  const headerLines = signedHeaders.map((h) => `${h}:${String(req.headers[h] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonical = ['POST', '/', '', headerLines, signedHeaderList, createHash('sha256').update(body).digest('hex')].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest();
  const key = hmac(hmac(hmac(hmac(`AWS4${SECRET_KEY}`, date), region), service), 'aws4_request');
  return createHmac('sha256', key).update(toSign).digest('hex') === signature ? out : { ...out, sigProblem: 'signature mismatch' };
}

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0', 'content-length': Buffer.byteLength(text), 'x-amzn-requestid': 'req-123', ...headers });
  res.end(text);
};

beforeAll(async () => {
  server = createServer((req, res) => {
    sockets.add(req.socket);
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const v = verify(req, body);
      seen.push({ target: String(req.headers['x-amz-target']), amzDate: String(req.headers['x-amz-date']), body, ...v });
      if (v.sigProblem === 'skewed') return json(res, 400, { __type: 'InvalidSignatureException', message: 'Signature expired' }, { date: new Date(Date.now() + serverClockOffsetMs).toUTCString() });
      if (v.sigProblem) return json(res, 403, { __type: 'InvalidSignatureException', message: v.sigProblem });
      const next = script.shift();
      if (next) return next(req, res);
      json(res, 200, { ok: true });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  for (const s of sockets) s.destroy();
  return new Promise<void>((r) => server.close(() => r()));
});
beforeEach(() => {
  seen.length = 0;
  script = [];
  serverClockOffsetMs = 0;
});

const sleeps: number[] = [];
const client = (service = DYNAMODB, o: Partial<ConstructorParameters<typeof AwsJsonClient>[1]> = {}) =>
  new AwsJsonClient(service, {
    region: REGION,
    endpoint,
    credentials: CREDENTIALS,
    maxAttempts: 2,
    requestHandler: { requestTimeout: 2_000, connectionTimeout: 1_000, throwOnRequestTimeout: true },
    random: () => 0.999,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...o,
  });

async function failure(p: Promise<unknown>): Promise<AwsServiceError & Record<string, any>> {
  const err = await rejectionOf(p);
  expect(err).toBeInstanceOf(Error);
  return err as AwsServiceError & Record<string, any>;
}

describe('requests', () => {
  test.each([
    ['DynamoDB_20120810.GetItem', DYNAMODB, 'dynamodb', 'GetItem'],
    ['TrentService.Decrypt', KMS, 'kms', 'Decrypt'],
    ['secretsmanager.GetSecretValue', SECRETS_MANAGER, 'secretsmanager', 'GetSecretValue'],
  ] as const)('%s: POST / with X-Amz-Target, JSON body, SigV4 for the service verified independently', async (target, service, signingName, op) => {
    const out = await client(service).send(op, { a: 'b', n: 1 });
    expect(out).toEqual({ ok: true });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ target, body: '{"a":"b","n":1}', service: signingName });
    expect(seen[0].sigProblem).toBeUndefined();
  });

  test('credentials are resolved once and reused; an expiring provider is asked again near its expiry', async () => {
    let calls = 0;
    const c = client(DYNAMODB, {
      credentials: async () => {
        calls++;
        return { ...CREDENTIALS, expiration: new Date(Date.now() + (calls === 1 ? 60_000 : 3_600_000)) };
      },
    });
    await c.send('GetItem', {});
    await c.send('GetItem', {});
    await c.send('GetItem', {});
    // The first credentials expire within 5 minutes: refreshed once, then reused.
    expect(calls).toBe(2);
    expect(seen.every((s) => s.sigProblem === undefined)).toBe(true);
  });

  test('the response bytes are zero-filled once parsed (they may hold a data key)', async () => {
    const answer = Buffer.from(JSON.stringify({ Plaintext: Buffer.alloc(32, 7).toString('base64'), KeyId: 'k' }));
    const handler: RequestHandlerLike = { handle: async () => ({ response: { statusCode: 200, headers: {}, body: Readable.from([answer]) } as never }) };
    const out = await client(KMS, { requestHandler: handler }).send<{ KeyId: string }>('Decrypt', {});
    expect(out.KeyId).toBe('k');
    expect(answer.every((b) => b === 0)).toBe(true);
  });
});

describe('endpoints', () => {
  const env = { AWS_ENDPOINT_URL: 'http://127.0.0.1:4566', AWS_ENDPOINT_URL_KMS: 'http://127.0.0.1:4599' };
  test('explicit, then AWS_ENDPOINT_URL_<SERVICE>, then AWS_ENDPOINT_URL, then the regional endpoint', () => {
    expect(resolveEndpoint(KMS, 'eu-west-1', 'http://localhost:1', env).href).toBe('http://localhost:1/');
    expect(resolveEndpoint(KMS, 'eu-west-1', undefined, env).href).toBe('http://127.0.0.1:4599/');
    expect(resolveEndpoint(DYNAMODB, 'eu-west-1', undefined, env).href).toBe('http://127.0.0.1:4566/');
    expect(resolveEndpoint(SECRETS_MANAGER, 'eu-west-1', undefined, { ...env, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' }).href).toBe('https://secretsmanager.eu-west-1.amazonaws.com/');
    expect(resolveEndpoint(DYNAMODB, 'eu-central-1', undefined, {}).href).toBe('https://dynamodb.eu-central-1.amazonaws.com/');
    expect(resolveEndpoint(KMS, 'cn-north-1', undefined, {}).href).toBe('https://kms.cn-north-1.amazonaws.com.cn/');
    expect(() => resolveEndpoint(KMS, 'evil.example.com/x', undefined, {})).toThrow(/not an AWS region/);
  });
});

describe('retries (standard mode, within the call budget)', () => {
  beforeEach(() => (sleeps.length = 0));

  test.each([
    ['throttling', (res: ServerResponse) => json(res, 400, { __type: 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException' })],
    ['a 500', (res: ServerResponse) => json(res, 500, { __type: 'InternalServerError' })],
    ['a 503 without a body', (res: ServerResponse) => res.writeHead(503).end()],
    ['a connection reset', (_res: ServerResponse, req: IncomingMessage) => req.socket.destroy()],
  ])('%s is retried once, after a jittered backoff of at most MAX_BACKOFF_MS', async (_label, fail) => {
    script = [(req, res) => fail(res, req)];
    expect(await client().send('PutItem', {})).toEqual({ ok: true });
    expect(seen).toHaveLength(2);
    expect(sleeps).toHaveLength(1);
    expect(sleeps[0]).toBeLessThan(MAX_BACKOFF_MS);
  });

  test('maxAttempts bounds the attempts; the error says how many', async () => {
    script = [(_, res) => json(res, 500, { __type: 'InternalServerError' }), (_, res) => json(res, 500, { __type: 'InternalServerError' })];
    const err = await failure(client().send('PutItem', {}));
    expect(err.name).toBe('InternalServerError');
    expect(err.$fault).toBe('server');
    expect(err.$metadata).toMatchObject({ httpStatusCode: 500, attempts: 2, requestId: 'req-123' });
    expect(seen).toHaveLength(2);
  });

  test.each([
    ['ConditionalCheckFailedException', 'com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException'],
    ['TransactionCanceledException', 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException'],
    ['ValidationException', 'com.amazonaws.dynamodb.v20120810#ValidationException'],
    ['InvalidCiphertextException', 'InvalidCiphertextException'],
    ['AccessDeniedException', 'AccessDeniedException'],
  ])('%s is final: one attempt', async (name, type) => {
    script = [(_, res) => json(res, 400, { __type: type, message: 'final' })];
    const err = await failure(client().send('TransactWriteItems', {}));
    expect(err.name).toBe(name);
    expect(seen).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  test('a KMS that hangs: every attempt times out, the call fails within the budget, and KmsDataKeyService says unavailable', async () => {
    const deadline = 5_000;
    const budget = awsCallBudget(deadline);
    script = [() => undefined, () => undefined];
    const kms = leanClients(REGION, deadline, { endpoint, credentials: CREDENTIALS }).kms;
    const keyArn = 'arn:aws:kms:eu-central-1:111122223333:key/0b9a7c3e-1111-4222-8333-444455556666';
    const t0 = Date.now();
    const err = await failure(new KmsDataKeyService(kms, keyArn).decryptDataKey(Buffer.alloc(40, 1), { tenant: 't' }, keyArn));
    const elapsed = Date.now() - t0;
    expect(err).toBeInstanceOf(KeyServiceError);
    expect((err as unknown as KeyServiceError).reason).toBe('unavailable');
    expect((err as unknown as KeyServiceError).awsCode).toBe('TimeoutError');
    expect(seen.filter((s) => s.target === 'TrentService.Decrypt')).toHaveLength(budget.maxAttempts);
    expect(elapsed).toBeGreaterThanOrEqual(budget.maxAttempts * budget.requestTimeoutMs - 50);
    expect(elapsed).toBeLessThan(worstCaseCallMs(budget) + 500);
    expect(worstCaseCallMs(budget)).toBeLessThanOrEqual(deadline / 4);
  }, 15_000);

  test('an answer that stalls after its headers: the socket timeout ends the attempt, the retry succeeds, within the budget', async () => {
    const budget = awsCallBudget(5_000);
    script = [
      (_, res) => {
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0', 'content-length': '100' });
        res.write('{"Item":');
      },
    ];
    const ddb = leanClients(REGION, 5_000, { endpoint, credentials: CREDENTIALS }).ddb;
    const t0 = Date.now();
    expect(await ddb.send('GetItem', {})).toEqual({ ok: true });
    expect(seen).toHaveLength(2);
    expect(Date.now() - t0).toBeLessThan(worstCaseCallMs(budget) + 500);
  }, 15_000);

  test('a refused signature with a skewed clock: the offset is learnt from the Date header and the retry is signed in server time', async () => {
    serverClockOffsetMs = 60 * 60_000;
    const c = client();
    expect(await c.send('GetItem', {})).toEqual({ ok: true });
    expect(seen.map((s) => s.sigProblem)).toEqual(['skewed', undefined]);
    // Later calls are signed in server time straight away.
    await c.send('GetItem', {});
    expect(seen).toHaveLength(3);
    expect(seen[2].sigProblem).toBeUndefined();
  });

  test('a signature refused for another reason is not retried', async () => {
    const err = await failure(client(DYNAMODB, { credentials: { ...CREDENTIALS, secretAccessKey: 'wrong' } }).send('GetItem', {}));
    expect(err.name).toBe('InvalidSignatureException');
    expect(seen).toHaveLength(1);
  });
});

describe('errors', () => {
  test('named by x-amzn-errortype (sanitized), else __type after #; the body members kept, the message left out', async () => {
    expect(sanitizeErrorCode('ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/')).toBe('ThrottlingException');
    expect(sanitizeErrorCode('com.amazonaws.dynamodb.v20120810#ResourceNotFoundException')).toBe('ResourceNotFoundException');
    const canary = makeCanary('message');
    script = [
      (_, res) =>
        json(
          res,
          400,
          { __type: 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException', Message: `quoting ${canary}`, CancellationReasons: [{ Code: 'ConditionalCheckFailed', Item: { n: { N: '3' } } }, { Code: 'None' }] },
          { 'x-amzn-errortype': 'TransactionCanceledException:http://internal.amazon.com/coral/' },
        ),
    ];
    const err = await failure(client().send('TransactWriteItems', {}));
    expect(err).toBeInstanceOf(AwsServiceError);
    expect(err.name).toBe('TransactionCanceledException');
    expect(err.$fault).toBe('client');
    expect(err.CancellationReasons).toEqual([{ Code: 'ConditionalCheckFailed', Item: { n: { N: '3' } } }, { Code: 'None' }]);
    expect(err.message).toBe('DynamoDB TransactWriteItems failed: TransactionCanceledException (HTTP 400)');
    expect(canaryHits(renderAll(err), [canary])).toEqual([]);
  });

  test('no credential, session token or request body in any error', async () => {
    const plaintext = makeCanary('plaintext');
    const failures = [
      failure(client(KMS, { requestHandler: { handle: async () => Promise.reject(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })) } }).send('Decrypt', { CiphertextBlob: plaintext })),
      failure(client(KMS, { credentials: { ...CREDENTIALS, secretAccessKey: 'wrong' } }).send('Decrypt', { CiphertextBlob: plaintext })),
    ];
    script = [(_, res) => json(res, 500, { __type: 'KMSInternalException' }), (_, res) => json(res, 500, { __type: 'KMSInternalException', message: plaintext })];
    failures.push(failure(client(KMS).send('Decrypt', { CiphertextBlob: plaintext })));
    // A 2xx answer that is not JSON: V8's SyntaxError would quote it.
    const garbled = Buffer.from(`${plaintext} not json`);
    const handler: RequestHandlerLike = { handle: async () => ({ response: { statusCode: 200, headers: {}, body: Readable.from([garbled]) } as never }) };
    failures.push(failure(client(KMS, { requestHandler: handler }).send('Decrypt', {})));
    const errors = await Promise.all(failures);
    expect(errors.map((e) => e.name)).toEqual(['Error', 'InvalidSignatureException', 'KMSInternalException', 'InvalidResponseError']);
    for (const err of errors) expect(canaryHits(renderAll(err), [SECRET_KEY, SESSION_TOKEN, plaintext])).toEqual([]);
  });
});

describe('LeanDynamo over the seam', () => {
  test('BatchGetItem: items per table as documents, unprocessed keys handed back in document form', async () => {
    const sent: unknown[] = [];
    const rpc = {
      async send<T>(op: string, input: object): Promise<T> {
        sent.push({ op, input });
        return {
          Responses: { t: [{ pk: { S: 'a' }, bin: { B: Buffer.from([1, 2]).toString('base64') } }] },
          UnprocessedKeys: { t: { Keys: [{ pk: { S: 'b' } }], ConsistentRead: true }, empty: { Keys: [] } },
        } as T;
      },
    };
    const out = await new LeanDynamo(rpc).batchGet({ t: { Keys: [{ pk: 'a' }, { pk: 'b' }, { pk: 'c', gone: undefined }], ConsistentRead: true } });
    expect(sent).toEqual([{ op: 'BatchGetItem', input: { RequestItems: { t: { Keys: [{ pk: { S: 'a' } }, { pk: { S: 'b' } }, { pk: { S: 'c' } }], ConsistentRead: true } } } }]);
    expect(out).toEqual({ responses: { t: [{ pk: 'a', bin: Buffer.from([1, 2]) }] }, unprocessed: { t: { Keys: [{ pk: 'b' }], ConsistentRead: true } } });
  });

  test('marshalling refuses what util-dynamodb refuses: unsafe integers, NaN, class instances', async () => {
    const rpc = { send: async <T>() => ({}) as T };
    const doc = new LeanDynamo(rpc);
    await expect(doc.put({ TableName: 't', Item: { n: 2 ** 53 } })).rejects.toThrow(/MAX_SAFE_INTEGER/);
    await expect(doc.put({ TableName: 't', Item: { n: NaN } })).rejects.toThrow(/NaN/);
    await expect(doc.put({ TableName: 't', Item: { d: new Date() } })).rejects.toThrow(/Unsupported type/);
    await expect(doc.put({ TableName: 't', Item: { n: 2n ** 60n, ok: 1.5, s: new Set(['a']) } })).resolves.toBeUndefined();
  });
});

describe('adversarial review: writes, marshalling and answers', () => {
  test('TransactWriteItems carries a ClientRequestToken (the SDK fills one in), the same on the retry: a transaction that committed before the connection broke is not applied twice', async () => {
    // DynamoDB's idempotency as the service keeps it: a token that committed answers 200 again;
    // without a token the retried write runs again and its condition fails.
    const committed = new Set<string>();
    let applied = 0;
    const transact: Behavior = (req, res) => {
      const token = (JSON.parse(seen[seen.length - 1].body) as { ClientRequestToken?: string }).ClientRequestToken;
      if (token !== undefined && committed.has(token)) return json(res, 200, {});
      applied++;
      if (token !== undefined) committed.add(token);
      if (applied === 1) return req.socket.destroy(); // committed, but the answer is lost
      json(res, 400, { __type: 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException', CancellationReasons: [{ Code: 'ConditionalCheckFailed' }] });
    };
    script = [transact, transact];
    const doc = new LeanDynamo(client());
    await expect(doc.transactWrite({ TransactItems: [{ Put: { TableName: 't', Item: { pk: 'r1' }, ConditionExpression: 'attribute_not_exists(pk)' } }] })).resolves.toBeUndefined();
    expect(applied).toBe(1);
    const tokens = seen.map((s) => (JSON.parse(s.body) as { ClientRequestToken?: string }).ClientRequestToken);
    expect(tokens).toHaveLength(2);
    expect(tokens[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(tokens[1]).toBe(tokens[0]);
    // Another call is another transaction; a caller's own token is kept as given.
    seen.length = 0;
    await doc.transactWrite({ TransactItems: [{ Put: { TableName: 't', Item: { pk: 'r2' } } }] });
    await doc.transactWrite({ TransactItems: [{ Put: { TableName: 't', Item: { pk: 'r3' } } }], ClientRequestToken: 'caller-token' });
    const later = seen.map((s) => (JSON.parse(s.body) as { ClientRequestToken?: string }).ClientRequestToken);
    expect(later[0]).not.toBe(tokens[0]);
    expect(later[1]).toBe('caller-token');
  });

  test('an empty set is refused as util-dynamodb refuses it, never dropped silently (a missing attribute can read as "no restriction")', async () => {
    const sent: unknown[] = [];
    const doc = new LeanDynamo({ send: async <T>(_op: string, input: object) => (sent.push(input), {}) as T });
    await expect(doc.put({ TableName: 't', Item: { pk: 'a', allowed: new Set<string>() } })).rejects.toThrow(/non-empty set/);
    await expect(doc.put({ TableName: 't', Item: { pk: 'a', allowed: new Set([undefined]) } })).rejects.toThrow(/non-empty set/);
    await expect(doc.query({ TableName: 't', KeyConditionExpression: 'pk = :p', ExpressionAttributeValues: { ':p': 'a', ':s': new Set() } })).rejects.toThrow(/non-empty set/);
    expect(sent).toEqual([]);
  });

  test('an attribute named __proto__ stays an attribute both ways: never dropped on writing, never a prototype on reading', async () => {
    const sent: Array<{ Item: Record<string, unknown> }> = [];
    const row = JSON.parse('{"pk":{"S":"a"},"__proto__":{"M":{"isAdmin":{"BOOL":true},"__proto__":{"M":{"polluted":{"BOOL":true}}}}}}') as Record<string, unknown>;
    const doc = new LeanDynamo({
      send: async <T>(op: string, input: object) => {
        if (op === 'PutItem') sent.push(input as { Item: Record<string, unknown> });
        return (op === 'GetItem' ? { Item: row } : {}) as T;
      },
    });
    const read = (await doc.get({ TableName: 't', Key: { pk: 'a' } }))!;
    expect(Object.getPrototypeOf(read)).toBe(Object.prototype);
    expect((read as { isAdmin?: unknown }).isAdmin).toBeUndefined();
    expect(({} as { polluted?: unknown; isAdmin?: unknown }).polluted).toBeUndefined();
    expect(Object.keys(read)).toEqual(['pk', '__proto__']);
    const nested = Object.getOwnPropertyDescriptor(read, '__proto__')!.value as Record<string, unknown>;
    expect(Object.getPrototypeOf(nested)).toBe(Object.prototype);
    expect(Object.keys(nested)).toEqual(['isAdmin', '__proto__']);
    // Written back as read: the attribute is on the wire, the wire item's prototype untouched.
    await doc.put({ TableName: 't', Item: read });
    const item = sent[0].Item;
    expect(Object.getPrototypeOf(item)).toBe(Object.prototype);
    expect(JSON.parse(JSON.stringify(item))).toEqual(JSON.parse(JSON.stringify(row)));
    expect(JSON.stringify(item)).toBe(JSON.stringify(row));
  });

  test('an answer larger than the bound, or one that never ends, fails as InvalidResponseError without being retried, and what was read is zero-filled', async () => {
    const chunks: Buffer[] = [];
    let attempts = 0;
    let destroyed = false;
    const endless: RequestHandlerLike = {
      handle: async () => {
        attempts++;
        const body = new Readable({
          read() {
            const c = Buffer.alloc(1 << 20, 0x41);
            chunks.push(c);
            this.push(c);
          },
          destroy(err, cb) {
            destroyed = true;
            cb(err);
          },
        });
        return { response: { statusCode: 200, headers: {}, body } as never };
      },
    };
    const err = await failure(client(DYNAMODB, { requestHandler: endless }).send('GetItem', {}));
    expect(err.name).toBe('InvalidResponseError');
    expect(err.message).toMatch(/^DynamoDB GetItem: the answer is larger than \d+ bytes$/);
    expect(attempts).toBe(1);
    expect(destroyed).toBe(true);
    const read = chunks.reduce((n, c) => n + c.length, 0);
    expect(read).toBeLessThanOrEqual(64 * (1 << 20));
    // Every chunk handed to the client is wiped (the stream may hold one more, never delivered).
    expect(chunks.length).toBeGreaterThan(32);
    expect(chunks.slice(0, -1).every((c) => c.every((b) => b === 0))).toBe(true);
    // An error answer is bounded the same way.
    const errorHandler: RequestHandlerLike = { handle: async () => ({ response: { statusCode: 500, headers: {}, body: (await endless.handle({} as never)).response.body } as never }) };
    expect((await failure(client(DYNAMODB, { requestHandler: errorHandler, maxAttempts: 1 }).send('GetItem', {}))).name).toBe('InvalidResponseError');
  });
});

describe('adversarial review: 2xx answers of an unknown shape', () => {
  test.each(['null', '[]', '[{"Item":{}}]', '5', '"committed"', 'true'])('a 2xx answer %s (JSON, but not an object) fails as InvalidResponseError: a write never reads as committed from it', async (text) => {
    const handler: RequestHandlerLike = { handle: async () => ({ response: { statusCode: 200, headers: {}, body: Readable.from([Buffer.from(text)]) } as never }) };
    const err = await failure(new LeanDynamo(client(DYNAMODB, { requestHandler: handler })).transactWrite({ TransactItems: [{ Put: { TableName: 't', Item: { pk: 'a' } } }] }));
    expect(err.name).toBe('InvalidResponseError');
    expect(err.message).toBe('DynamoDB TransactWriteItems: the answer is not a JSON object');
  });
});

describe('adversarial review: an answer that trickles', () => {
  test('a body that keeps trickling (never idle long enough for the socket timeout) still ends the attempt at its timeout: the call fails within the budget', async () => {
    const budget = awsCallBudget(5_000);
    const timers: NodeJS.Timeout[] = [];
    const trickle: Behavior = (_, res) => {
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
      res.write('{"Item":{"pk":{"S":"');
      timers.push(setInterval(() => res.write('a'), 50));
    };
    script = [trickle, trickle];
    const ddb = leanClients(REGION, 5_000, { endpoint, credentials: CREDENTIALS }).ddb;
    const t0 = Date.now();
    try {
      const err = await failure(ddb.send('GetItem', {}));
      expect(err.name).toBe('TimeoutError');
      expect(seen).toHaveLength(budget.maxAttempts);
      expect(Date.now() - t0).toBeLessThan(worstCaseCallMs(budget) + 500);
    } finally {
      for (const t of timers) clearInterval(t);
    }
  }, 15_000);
});
