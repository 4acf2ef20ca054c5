/**
 * The functions' SDK clients: kept-alive connections, attempt timeouts and retries that fit inside
 * the request deadline (a hanging KMS end to end: router-lambda-handler.test.ts), and the router's
 * lean middleware (cached chains, constant user agent, no logger), against a loopback endpoint.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { awsCallBudget, cellClients, clientConfig, ROUTER_CLIENT_OPTIONS, USER_AGENT, worstCaseCallMs } from '../../../lambda/handlers/aws-clients';
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
    httpsAgent: { keepAlive: true },
    httpAgent: { keepAlive: true },
  });
});

test('the router client keeps one connection alive across calls, sends a constant user agent, and caches its middleware chains', async () => {
  const clients = cellClients('eu-central-1', 29_000, { ...ROUTER_CLIENT_OPTIONS, endpoint, credentials });
  const ddb = clients.ddb;
  expect(ddb.config.cacheMiddleware).toBe(true);
  const names = ddb.middlewareStack.identify().join('\n');
  expect(names).not.toMatch(/loggerMiddleware|getUserAgentMiddleware/);
  expect(names).toMatch(/constantUserAgent/);
  sockets.clear();
  seen.length = 0;
  const doc = new LeanDynamo(ddb);
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
  // A second command class gets its own cached chain; the first one's still works.
  await ddb.send(new PutItemCommand({ TableName: 'usage', Item: { pk: { S: 'c' } } }));
  expect(sockets.size).toBe(1);
});

test("the vault's and admin's clients keep per-call middleware, so lib-dynamodb's document client accepts them", () => {
  const clients = cellClients('eu-central-1', 29_000, { endpoint, credentials });
  expect(clients.ddb.config.cacheMiddleware).not.toBe(true);
  expect(() => DynamoDBDocumentClient.from(clients.ddb)).not.toThrow();
});
