/**
 * The functions' AWS clients: kept-alive connections, attempt timeouts and retries that fit inside
 * the request deadline (a hanging KMS end to end: router-lambda-handler.test.ts; the lean client's
 * retries: test/unit/adapters/aws-json-client.test.ts), the router's lean clients and the vault's
 * SDK clients (constant user agent, no logger), against a loopback endpoint.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { awsCallBudget, clientConfig, leanClients, USER_AGENT, worstCaseCallMs } from '../../../lambda/handlers/aws-clients';
import { cellClients } from '../../../lambda/handlers/sdk-clients';
import { LeanDynamo } from '../../../lambda/adapters/dynamo-lean';

let server: Server;
let endpoint: string;
const sockets = new Set<unknown>();
const seen: { target: string; headers: IncomingHttpHeaders; body: string }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    sockets.add(req.socket);
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ target: String(req.headers['x-amz-target']), headers: req.headers, body });
      const out = req.headers['x-amz-target'] === 'DynamoDB_20120810.GetItem' ? JSON.stringify({ Item: { pk: { S: 'a' }, n: { N: '1.5' } } }) : '{}';
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0', 'content-length': Buffer.byteLength(out) });
      res.end(out);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const credentials = { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' };

// The construct accepts request deadlines from 5 s to 14 min (RegionalRouter requestDeadline).
test.each([5_000, 7_500, 29_000, 60_000, 300_000, 840_000])('deadline %i ms: every attempt of a call, with its backoff, fits in a quarter of it', (deadline) => {
  const budget = awsCallBudget(deadline);
  expect(worstCaseCallMs(budget)).toBeLessThanOrEqual(deadline / 4);
  const config = clientConfig('eu-central-1', deadline);
  expect(config.maxAttempts).toBe(budget.maxAttempts);
  expect(config.requestHandler).toMatchObject({
    requestTimeout: budget.requestTimeoutMs,
    connectionTimeout: budget.connectionTimeoutMs,
    throwOnRequestTimeout: true,
    socketTimeout: budget.requestTimeoutMs,
    httpsAgent: { keepAlive: true },
    httpAgent: { keepAlive: true },
  });
});

test('the router client keeps one connection alive across calls, sends a constant user agent, and signs for its service and region', async () => {
  const clients = leanClients('eu-central-1', 29_000, { endpoint, credentials });
  sockets.clear();
  seen.length = 0;
  const doc = new LeanDynamo(clients.ddb);
  for (let i = 0; i < 3; i++) await doc.put({ TableName: 'usage', Item: { pk: 'a', sk: `b${i}`, costUsd: 0.000125, absent: undefined } });
  expect(await doc.get({ TableName: 'usage', Key: { pk: 'a' } })).toEqual({ pk: 'a', n: 1.5 });
  expect(sockets.size).toBe(1);
  expect(seen).toHaveLength(4);
  for (const s of seen) {
    expect(s.headers['user-agent']).toBe(USER_AGENT);
    expect(s.headers['x-amz-user-agent']).toBe(USER_AGENT);
    expect(String(s.headers.authorization)).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDTEST\/\d{8}\/eu-central-1\/dynamodb\/aws4_request/);
  }
  // The same marshalling as lib-dynamodb's document client (removeUndefinedValues).
  expect(JSON.parse(seen[0].body).Item).toEqual({ pk: { S: 'a' }, sk: { S: 'b0' }, costUsd: { N: '0.000125' } });
  expect(seen[0].headers['content-type']).toBe('application/x-amz-json-1.0');
  // KMS and Secrets Manager share the transport (and its kept-alive connection), each signed for itself.
  await clients.kms.send('Decrypt', { CiphertextBlob: 'AA==' });
  await clients.secrets.send('GetSecretValue', { SecretId: 's' });
  expect(sockets.size).toBe(1);
  expect(seen.slice(-2).map((s) => [s.target, s.headers['content-type'], String(s.headers.authorization).split(',')[0]])).toEqual([
    ['TrentService.Decrypt', 'application/x-amz-json-1.1', expect.stringMatching(/Credential=AKIDTEST\/\d{8}\/eu-central-1\/kms\/aws4_request$/)],
    ['secretsmanager.GetSecretValue', 'application/x-amz-json-1.1', expect.stringMatching(/Credential=AKIDTEST\/\d{8}\/eu-central-1\/secretsmanager\/aws4_request$/)],
  ]);
});

test("the vault's SDK clients drop the logger and per-call user agent middleware, and keep one connection alive", async () => {
  const ddb = cellClients('eu-central-1', 29_000, { endpoint, credentials }).ddb;
  const names = ddb.middlewareStack.identify().join('\n');
  expect(names).not.toMatch(/loggerMiddleware|getUserAgentMiddleware/);
  expect(names).toMatch(/constantUserAgent/);
  sockets.clear();
  seen.length = 0;
  for (let i = 0; i < 2; i++) await ddb.send(new PutItemCommand({ TableName: 'usage', Item: { pk: { S: `c${i}` } } }));
  expect(sockets.size).toBe(1);
  expect(seen.map((s) => s.headers['user-agent'])).toEqual([USER_AGENT, USER_AGENT]);
});

test("the vault's and admin's clients keep per-call middleware chains, so lib-dynamodb's document client accepts them", () => {
  const clients = cellClients('eu-central-1', 29_000, { endpoint, credentials });
  expect(clients.ddb.config.cacheMiddleware).not.toBe(true);
  expect(() => DynamoDBDocumentClient.from(clients.ddb)).not.toThrow();
});
