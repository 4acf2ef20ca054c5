/**
 * `sovereign-router root-key` end to end: the CLI talks over loopback HTTP to the migration
 * function's app on a moto cell (as API Gateway would pass it the SigV4 caller). The run is
 * interrupted by a failing batch; the CLI says how to resume, and resuming finishes the job.
 */
import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CreateKeyCommand } from '@aws-sdk/client-kms';
import { run } from '../../cli/main';
import { DynamoSealedRowScanner } from '../../lambda/adapters/dynamo-sealed-row-scanner';
import { KmsDataKeyRewrapper } from '../../lambda/adapters/kms-data-key-rewrapper';
import { createRootKeyMigrationApp } from '../../lambda/core/root-key-migration-app';
import { RouterHarness, startRouterHarness } from '../support/router-harness';

let h: RouterHarness;
let server: Server;
let endpoint: string;
let keyA: string;
let keyB: string;
let failCall = 0;
let calls = 0;

beforeAll(async () => {
  h = await startRouterHarness();
  keyA = h.cell.config.rootKeyArn;
  for (const t of ['cli-a', 'cli-b']) await h.tenant(t);
  keyB = (await h.cell.clients.kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
  const app = createRootKeyMigrationApp({
    region: h.cell.config.region,
    rows: new DynamoSealedRowScanner(h.cell.clients.ddb, h.cell.config.tables.tenants),
    store: h.cell.store,
    rewrapper: new KmsDataKeyRewrapper(h.cell.clients.kms, keyB, [keyA]),
    sourceKeyArns: [keyA],
    batchBudgetMs: 0,
  });
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', async () => {
      calls++;
      if (req.url?.endsWith('/migrate') && calls === failCall) {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'KMS could not serve the rewrap; nothing was lost.', type: 'server_error', code: 'key_service_unavailable' } }));
        return;
      }
      const out = await app({ method: req.method!, path: req.url!, headers: { 'content-type': 'application/json' }, body, iamCaller: 'arn:aws:iam::111122223333:role/KeyOperator' });
      res.writeHead(out.status, out.headers);
      res.end(out.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 120_000);
afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await h?.close();
});

async function cli(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await run(['--endpoint', endpoint, ...args], { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) }, async () => '');
  return { code, stdout, stderr };
}

test('root-key --help explains the commands, the recovery and the exit codes', async () => {
  const res = await cli(['root-key', '--help']);
  expect(res.code).toBe(0);
  expect(res.stdout).toMatch(/root-key status/);
  expect(res.stdout).toMatch(/root-key migrate \[--cursor C\] \[--page-size N\]/);
  expect(res.stdout).toMatch(/run it again, with\s+--cursor/);
  expect((await cli(['--help'])).stdout).toMatch(/root-key migrate/);
});

test('status, an interrupted migration, the resume it prints, and a complete status', async () => {
  const before = await cli(['root-key', 'status']);
  expect(before.code).toBe(0);
  expect(before.stdout).toContain(`previous root key ${keyA}: 8 row(s)`);
  expect(before.stdout).toContain('migration incomplete');

  calls = 0;
  failCall = 3;
  const interrupted = await cli(['root-key', 'migrate', '--page-size', '2']);
  expect(interrupted.code).toBe(1);
  // Scan pages count tenant META rows too, so a page of 2 holds at most 2 sealed rows.
  expect(interrupted.stderr).toMatch(/batch 1: scanned [0-2], rewrapped [0-2],/);
  expect(interrupted.stderr).toMatch(/Interrupted after 2 batch\(es\)/);
  expect(interrupted.stderr).toMatch(/key_service_unavailable/);
  const resume = /resume with:\n\s+(sovereign-router root-key migrate --cursor (\S+))/.exec(interrupted.stderr);
  expect(resume).not.toBeNull();

  failCall = 0;
  const resumed = await cli(['root-key', 'migrate', '--page-size', '2', '--cursor', resume![2]]);
  expect(resumed.code).toBe(0);
  expect(resumed.stderr).toMatch(/\(done\)/);
  const moved = Number(/finished: (\d+) row\(s\) rewrapped, 0 already current, 0 changed meanwhile, 0 failed/.exec(resumed.stdout)?.[1]);
  const movedBefore = Number(/Interrupted after 2 batch\(es\), (\d+) row/.exec(interrupted.stderr)?.[1]);
  // Every row moved exactly once across the two runs.
  expect(moved + movedBefore).toBe(8);

  const after = await cli(['root-key', 'status', '--json']);
  expect(JSON.parse(after.stdout)).toMatchObject({ currentKeyArn: keyB, current: 8, previous: { [keyA]: 0 }, complete: true });
});

test('bad options are refused before any request', async () => {
  calls = 0;
  expect((await cli(['root-key', 'migrate', '--page-size', '0'])).code).toBe(2);
  expect((await cli(['root-key', 'rotate'])).code).toBe(2);
  expect(calls).toBe(0);
});
