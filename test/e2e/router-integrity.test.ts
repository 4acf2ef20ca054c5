/**
 * Issue 9, point 5: the router verifies the token before it parses or uses any tenant row.
 * - An unauthenticated caller (forged token with a valid checksum) gets the same 401 whatever the
 *   state of the tenant's rows: healthy, malformed sealed row, malformed META, unknown tenant.
 * - For an authenticated caller a malformed or tampered row fails only the requests that need
 *   it, with a non-retryable 500 carrying the request id and nothing an outsider could use.
 * - A wrapped data key moved between rows (KMS context mismatch) is an integrity failure (500),
 *   not a retryable 503.
 */
import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { MemorySink } from '../../lambda/core/router/response-sink';
import { RouterHarness, startRouterHarness } from '../support/router-harness';
import { forgedToken } from '../support/vault-client';

const REGION = 'eu-central-1';

let h: RouterHarness;
const tokens: Record<string, { adminToken: string; invokeToken: string }> = {};

const secretKey = (tenant: string, provider: string) => ({ pk: `TENANT#${tenant}`, sk: `SECRET#${provider}#default` });
const metaKey = (tenant: string) => ({ pk: `TENANT#${tenant}`, sk: 'META' });

async function getItem(key: Record<string, string>) {
  return (await h.cell.clients.doc.send(new GetCommand({ TableName: h.cell.config.tables.tenants, Key: key, ConsistentRead: true }))).Item!;
}
async function putItem(item: Record<string, unknown>) {
  await h.cell.clients.doc.send(new PutCommand({ TableName: h.cell.config.tables.tenants, Item: item }));
}

const chatBody = (model: string) => JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] });

async function chat(token: string, model = 'gpt-4o-mini') {
  const kmsBefore = h.kmsCalls.length;
  const upstreamBefore = h.fakes.requests.length;
  const sink = new MemorySink();
  const record = await h.router({ method: 'POST', path: '/v1/chat/completions', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: chatBody(model) }, sink);
  return { sink, json: JSON.parse(sink.body), record, kms: h.kmsCalls.slice(kmsBefore), upstream: h.fakes.requests.slice(upstreamBefore) };
}

/** The parts of a 401 that may legitimately differ between calls: none but the request id header. */
function shapeOf(res: { sink: MemorySink }) {
  const { 'x-request-id': _id, ...headers } = res.sink.headers;
  return { status: res.sink.status, headers, body: res.sink.body };
}

beforeAll(async () => {
  h = await startRouterHarness();
  for (const t of ['healthy-co', 'badrow-co', 'badmeta-co', 'moved-co']) tokens[t] = await h.tenant(t);
  // A sealed row that is not a sealed row any more (the openai one only).
  const row = await getItem(secretKey('badrow-co', 'openai'));
  await putItem({ ...row, iv: 'not base64 at all', version: 'one' });
  // A META whose policy is not a policy.
  await h.cell.clients.doc.send(
    new UpdateCommand({ TableName: h.cell.config.tables.tenants, Key: metaKey('badmeta-co'), UpdateExpression: 'SET policy = :p', ExpressionAttributeValues: { ':p': 'garbage' } }),
  );
  // The anthropic row's wrapped data key moved into the openai row (both current versions).
  const openai = await getItem(secretKey('moved-co', 'openai'));
  const anthropic = await getItem(secretKey('moved-co', 'anthropic'));
  await putItem({ ...openai, wrappedKey: anthropic.wrappedKey });
}, 90_000);
afterAll(async () => {
  await h?.close();
});

describe('an unauthenticated caller sees only 401, whatever the rows hold', () => {
  it('forged tokens (valid checksum) for healthy, malformed-row, malformed-META and unknown tenants: identical 401s, no KMS, no provider', async () => {
    const results = [];
    for (const tenant of ['healthy-co', 'badrow-co', 'badmeta-co', 'moved-co', 'never-existed']) {
      const res = await chat(forgedToken(REGION, tenant));
      expect(res.kms).toEqual([]);
      expect(res.upstream).toEqual([]);
      results.push(shapeOf(res));
    }
    expect(results[0]).toMatchObject({ status: 401, body: expect.stringContaining('"code":"invalid_api_key"') });
    for (const r of results) expect(r).toEqual(results[0]);
  });

  it('the vault answers the same 401 for a forged token of a tenant with a malformed META', async () => {
    const healthy = await h.vault(forgedToken(REGION, 'healthy-co'), 'GET', '/vault/secrets');
    const broken = await h.vault(forgedToken(REGION, 'badmeta-co'), 'GET', '/vault/secrets');
    expect(healthy.status).toBe(401);
    expect(broken).toEqual(healthy);
  });
});

describe('an authenticated caller: only requests that need the bad row fail, non-retryably', () => {
  it('malformed openai row: openai requests get 500 secret_integrity_failure with the request id; anthropic requests work', async () => {
    const bad = await chat(tokens['badrow-co'].invokeToken);
    expect(bad.sink.status).toBe(500);
    expect(bad.json.error).toEqual({
      message: expect.stringContaining('retrying will not help'),
      type: 'server_error',
      code: 'secret_integrity_failure',
      request_id: bad.record!.requestId,
    });
    expect(bad.sink.headers['x-should-retry']).toBe('false');
    // Nothing about the row leaks: not its fields, not the parser's view of them.
    for (const leak of ['not base64', 'iv', 'version', 'malformed', 'one']) expect(bad.json.error.message).not.toContain(leak);
    expect(bad.kms).toEqual([]);
    expect(bad.upstream).toEqual([]);

    const other = await chat(tokens['badrow-co'].invokeToken, 'claude-haiku-4-5');
    expect(other.sink.status).toBe(200);
    expect(other.kms).toEqual(['DecryptCommand']);
  });

  it('malformed META: 500 stored_record_unreadable with the request id, not retryable, no KMS', async () => {
    const res = await chat(tokens['badmeta-co'].invokeToken);
    expect(res.sink.status).toBe(500);
    // No usage record: the tenant item it would name could not be read.
    expect(res.record).toBeUndefined();
    expect(res.json.error).toMatchObject({ code: 'stored_record_unreadable', request_id: res.sink.headers['x-request-id'] });
    expect(res.sink.headers['x-request-id']).toMatch(/^[0-9A-Za-z_-]{8,}/);
    expect(res.json.error.message).not.toContain('garbage');
    expect(res.sink.headers['x-should-retry']).toBe('false');
    expect(res.kms).toEqual([]);
  });

  it('a wrapped key moved between rows: KMS refuses the context, answered 500 secret_integrity_failure (not 503)', async () => {
    const res = await chat(tokens['moved-co'].invokeToken);
    expect(res.kms).toEqual(['DecryptCommand']);
    expect(res.upstream).toEqual([]);
    expect(res.sink.status).toBe(500);
    expect(res.json.error).toMatchObject({ code: 'secret_integrity_failure', request_id: res.record!.requestId });
    expect(res.sink.headers['x-should-retry']).toBe('false');
    const line = h.logs.map((l) => JSON.parse(l)).find((l) => l.message === 'stored record refused' && l.requestId === res.record!.requestId);
    expect(line).toMatchObject({ errorName: 'KeyServiceError', reason: 'invalid_ciphertext', awsCode: 'InvalidCiphertextException' });
    // The untouched anthropic row of the same tenant still works.
    expect((await chat(tokens['moved-co'].invokeToken, 'claude-haiku-4-5')).sink.status).toBe(200);
  });

  it('the healthy tenant is unaffected', async () => {
    expect((await chat(tokens['healthy-co'].invokeToken)).sink.status).toBe(200);
  });
});
