import { createServer, IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { run } from '../../../cli/main';
import { regionOfApiHost, signedHeaders } from '../../../cli/sigv4';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

let server: Server;
let endpoint: string;
const seen: Seen[] = [];
let reply: { status: number; body: unknown } = { status: 200, body: {} };

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      res.writeHead(reply.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(reply.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((r) => server.close(r)));
beforeEach(() => {
  seen.length = 0;
  reply = { status: 200, body: {} };
});

async function cli(args: string[], stdin = '') {
  let stdout = '';
  let stderr = '';
  const code = await run(['--endpoint', endpoint, ...args], { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) }, async () => stdin);
  return { code, stdout, stderr };
}

test('tenants create prints only the token on stdout and says what it is on stderr', async () => {
  reply = { status: 201, body: { token: 'sr_euc1_acme_x', tokenId: 'tk_1' } };
  const r = await cli(['tenants', 'create', 'acme', '--sovereign']);
  expect(r).toMatchObject({ code: 0, stdout: 'sr_euc1_acme_x\n' });
  expect(r.stderr).toContain('shown only once');
  expect(seen[0]).toMatchObject({ method: 'POST', url: '/admin/tenants' });
  expect(JSON.parse(seen[0].body)).toEqual({ tenantId: 'acme', mode: 'sovereign' });
});

test('secrets put reads the key from stdin and sends the tenant token', async () => {
  reply = { status: 201, body: { provider: 'openai' } };
  const r = await cli(['secrets', 'put', 'openai', '--api-key-stdin', '--token', 'sr_tok'], 'sk-from-stdin\n');
  expect(r.code).toBe(0);
  expect(seen[0].headers.authorization).toBe('Bearer sr_tok');
  expect(JSON.parse(seen[0].body)).toEqual({ provider: 'openai', name: 'default', apiKey: 'sk-from-stdin' });
});

test('a provider key is never accepted on the command line', async () => {
  const r = await cli(['secrets', 'put', 'openai', '--api-key', 'sk-on-argv', '--token', 't']);
  expect(r.code).toBe(2);
  expect(seen).toHaveLength(0);
  const none = await cli(['secrets', 'put', 'openai', '--token', 't']);
  expect(none.code).toBe(2);
  expect(none.stderr).toContain('never on the command line');
});

test('vault commands without a token fail clearly before any request', async () => {
  const prev = process.env.SR_TOKEN;
  delete process.env.SR_TOKEN;
  try {
    const r = await cli(['tokens', 'list']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('needs a tenant-admin token');
    expect(seen).toHaveLength(0);
  } finally {
    if (prev !== undefined) process.env.SR_TOKEN = prev;
  }
});

test('server errors become one clear line and a non-zero exit, without a stack trace', async () => {
  reply = { status: 409, body: { error: { message: "Tenant 'acme' already exists in eu-central-1.", type: 'invalid_request_error', code: 'tenant_exists' } } };
  const r = await cli(['tenants', 'create', 'acme']);
  expect(r.code).toBe(1);
  expect(r.stderr).toBe("sovereign-router: POST /admin/tenants failed (HTTP 409, tenant_exists): Tenant 'acme' already exists in eu-central-1.\n");
});

test('offboarding needs --yes; unknown commands and plain http to a remote host are refused', async () => {
  expect((await cli(['tenants', 'offboard', 'acme'])).code).toBe(2);
  expect(seen).toHaveLength(0);
  expect((await cli(['frobnicate'])).stderr).toContain("unknown command 'frobnicate'");
  let stderr = '';
  const code = await run(['--endpoint', 'http://192.0.2.1', 'tenants', 'show', 'x'], { stdout: () => undefined, stderr: (s) => (stderr += s) });
  expect(code).toBe(2);
  expect(stderr).toContain('must use https');
});

test('--help lists every command group', async () => {
  const r = await cli(['--help']);
  expect(r.code).toBe(0);
  for (const word of ['tenants create', 'secrets put', 'tokens create', 'tenants usage', 'tenants audit']) expect(r.stdout).toContain(word);
});

test('admin requests to a deployed cell are signed with SigV4 for its region', async () => {
  expect(regionOfApiHost('abc123.execute-api.eu-central-1.amazonaws.com')).toBe('eu-central-1');
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
  process.env.AWS_ACCESS_KEY_ID = 'AKIDEXAMPLE';
  process.env.AWS_SECRET_ACCESS_KEY = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
  try {
    const headers = await signedHeaders({
      url: new URL('https://abc123.execute-api.eu-central-1.amazonaws.com/prod/admin/tenants'),
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"tenantId":"acme"}',
      region: 'eu-central-1',
    });
    expect(headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-central-1\/execute-api\/aws4_request, SignedHeaders=.*host.*, Signature=[0-9a-f]{64}$/);
    expect(headers['x-amz-date']).toMatch(/^\d{8}T\d{6}Z$/);
  } finally {
    process.env.AWS_ACCESS_KEY_ID = saved.id;
    process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
    if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
    if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
  }
});

test('token limits are read without --set-file and replaced with it', async () => {
  reply = { status: 200, body: { tokenId: 'tk_1', limits: { rpm: 5 } } };
  const read = await cli(['tenants', 'token-limits', 'acme', 'tk_1']);
  expect(read.code).toBe(0);
  expect(seen[0]).toMatchObject({ method: 'GET', url: '/admin/tenants/acme/tokens/tk_1/limits' });
  expect(JSON.parse(read.stdout)).toEqual({ tokenId: 'tk_1', limits: { rpm: 5 } });
});

test('tenants offboard --help explains the steps, the failure and the recovery', async () => {
  const r = await cli(['tenants', 'offboard', '--help']);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^Usage: sovereign-router tenants offboard <tenant-id> --yes/);
  for (const s of ['erasure key', 'no PITR', 'run the same command again', 'tenant.offboarded', 'legacySecretsNotShredded', '409 tenant_offboarded']) expect(r.stdout).toContain(s);
  expect(seen).toHaveLength(0);
  // The general help points to it.
  expect((await cli(['--help'])).stdout).toContain('tenants offboard --help');
});

test('tenants offboard: the result on stdout, what was destroyed on stderr; v1 rows are named', async () => {
  reply = { status: 200, body: { offboarded: true, tenantId: 'acme', secretsDestroyed: 3, tokensRevoked: 2, erasureKeyDestroyed: true, legacySecretsNotShredded: 1 } };
  const r = await cli(['tenants', 'offboard', 'acme', '--yes']);
  expect(r.code).toBe(0);
  expect(seen[0]).toMatchObject({ method: 'DELETE', url: '/admin/tenants/acme' });
  expect(JSON.parse(r.stdout)).toMatchObject({ erasureKeyDestroyed: true });
  expect(r.stderr).toContain('offboarded acme: erasure key destroyed, 3 secret(s) and 2 token(s) deleted');
  expect(r.stderr).toContain('warning: 1 secret(s) were sealed before erasure keys');
});

test('tenants offboard that fails server-side says how to finish it; a 409 does not', async () => {
  reply = { status: 500, body: { error: { message: 'The service failed.', type: 'server_error', code: 'internal_error' } } };
  const r = await cli(['tenants', 'offboard', 'acme', '--yes']);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('run the same command again to finish the offboarding');
  reply = { status: 409, body: { error: { message: "Tenant 'acme' was offboarded at 2026-01-01.", type: 'invalid_request_error', code: 'tenant_offboarded' } } };
  const again = await cli(['tenants', 'offboard', 'acme', '--yes']);
  expect(again.code).toBe(1);
  expect(again.stderr).toContain('tenant_offboarded');
  expect(again.stderr).not.toContain('run the same command again');
});
