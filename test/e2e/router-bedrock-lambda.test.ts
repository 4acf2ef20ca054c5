/**
 * Amazon Bedrock through the real router Lambda handler (lambda/handlers/router.ts), as deployed:
 * the function's environment names a Bedrock provider with `auth: 'iam'`, the role's credentials
 * come from the environment (as Lambda gives them), and the fake Bedrock verifies the SigV4
 * signature, its region and the session token. A Bedrock provider of another region in the
 * environment stops the handler at init.
 */
import { Writable } from 'node:stream';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { FAKE_AWS_CREDENTIALS, FakeBedrock, startFakeBedrock } from '../support/fake-bedrock';
import { RouterHarness, startRouterHarness } from '../support/router-harness';

type Handler = (event: APIGatewayProxyEvent, stream: Writable) => Promise<void>;
const HAIKU = 'anthropic.claude-3-5-haiku-20241022-v1:0';
const savedEnv = { ...process.env };
let h: RouterHarness;
let bedrock: FakeBedrock;
let invoke: string;

beforeAll(async () => {
  bedrock = await startFakeBedrock({ region: 'eu-central-1', key: 'unused-bearer-key' });
  h = await startRouterHarness({ extraProviders: () => ({ 'bedrock-iam': { kind: 'bedrock', baseUrl: bedrock.baseUrl, auth: 'iam', models: [HAIKU] } }) });
  ({ invokeToken: invoke } = await h.tenant('lambda-bedrock'));
  (globalThis as Record<string, unknown>).awslambda = { streamifyResponse: (fn: Handler) => fn, HttpResponseStream: { from: (s: Writable) => s } };
  for (const k of ['AWS_PROFILE', 'AWS_ROLE_ARN', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_BEARER_TOKEN_BEDROCK']) delete process.env[k];
  Object.assign(process.env, {
    ...h.cell.cell.env,
    PROVIDER_ENDPOINTS: JSON.stringify(h.cell.config.providers),
    AWS_ENDPOINT_URL: h.moto.endpoint,
    AWS_ACCESS_KEY_ID: FAKE_AWS_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: FAKE_AWS_CREDENTIALS.secretAccessKey,
    AWS_SESSION_TOKEN: FAKE_AWS_CREDENTIALS.sessionToken,
    AWS_REGION: h.cell.config.region,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: '/nonexistent/aws-config',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
  });
}, 60_000);
afterAll(async () => {
  delete (globalThis as Record<string, unknown>).awslambda;
  for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
  Object.assign(process.env, savedEnv);
  await h?.close();
  await bedrock?.close();
});

function event(body: unknown): APIGatewayProxyEvent {
  const headers = { Host: 'abc123.execute-api.eu-central-1.amazonaws.com', 'Content-Type': 'application/json', Authorization: `Bearer ${invoke}` };
  return {
    httpMethod: 'POST',
    path: '/v1/chat/completions',
    resource: '/v1/chat/completions',
    headers,
    multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
    body: JSON.stringify(body),
    isBase64Encoded: false,
    pathParameters: null,
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    stageVariables: null,
    requestContext: { requestId: 'req-bedrock', identity: { sourceIp: '203.0.113.9' }, stage: 'prod', path: '/prod/v1/chat/completions', httpMethod: 'POST' } as unknown as APIGatewayProxyEvent['requestContext'],
  };
}

async function load(): Promise<Handler> {
  let handler: Handler | undefined;
  await jest.isolateModulesAsync(async () => {
    handler = (await import('../../lambda/handlers/router')).handler as Handler;
  });
  return handler!;
}

test('the deployed handler signs Bedrock calls with the role credentials Lambda puts in the environment', async () => {
  const handler = await load();
  for (const stream of [false, true]) {
    const chunks: string[] = [];
    const sink = new Writable({ write: (c: Buffer | string, _e, cb) => (chunks.push(c.toString()), cb()) });
    await handler(event({ model: `bedrock-iam/${HAIKU}`, stream, messages: [{ role: 'user', content: 'from lambda' }] }), sink);
    const text = chunks.join('');
    expect(text).toContain(stream ? '"content":" lambda"' : '"content":"Echo: from lambda"');
    const up = bedrock.requests.at(-1)!;
    expect(up.auth).toBe('sigv4');
    expect(up.operation).toBe(stream ? 'converse-stream' : 'converse');
    // The fake recomputed the signature with these credentials and checked the session token.
    expect(up.sigv4).toMatchObject({ accessKeyId: FAKE_AWS_CREDENTIALS.accessKeyId, region: 'eu-central-1', service: 'bedrock' });
    expect(up.headers['x-amz-security-token']).toBe(FAKE_AWS_CREDENTIALS.sessionToken);
  }
});

test('a Bedrock provider of another region in the environment stops the handler at init', async () => {
  const saved = process.env.PROVIDER_ENDPOINTS;
  process.env.PROVIDER_ENDPOINTS = JSON.stringify({ 'bedrock-us': { kind: 'bedrock', baseUrl: 'https://bedrock-runtime.us-east-1.amazonaws.com' } });
  try {
    await expect(load()).rejects.toThrow("Amazon Bedrock in us-east-1 is outside the cell's region eu-central-1");
  } finally {
    process.env.PROVIDER_ENDPOINTS = saved;
  }
});
