/**
 * Stopping the local gateway (Ctrl-C, SIGTERM: lifecycle.ts calls stop()) while a request is in
 * flight: its connection is cut, and the request's end stage (settle of what was used, usage
 * record) still reaches the database before the database closes. Before, the database closed
 * under it: the record was lost and the reservation stayed until a reclaim.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonLogger } from '../../lambda/core/logger';
import { EmbeddedDatabase } from '../../local/embedded/database';
import { LocalGateway, startLocalGateway } from '../../local/gateway';
import { FakeProviders, startFakeProviders } from '../support/fake-providers';
import { gatewayJson } from '../support/gateway-http';

let fakes: FakeProviders;
let gw: LocalGateway | undefined;
const dir = mkdtempSync(join(tmpdir(), 'sr-stop-'));
const errors: string[] = [];

const http = (method: string, path: string, body?: unknown, token?: string) => gatewayJson(gw!.url, method, path, body, token);

beforeAll(async () => {
  fakes = await startFakeProviders();
});
afterAll(async () => {
  await gw?.stop();
  await fakes?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a stream in flight when the gateway stops: cut, and its usage record and settle are on disk, nothing left reserved', async () => {
  const log = jsonLogger('local', () => undefined);
  gw = await startLocalGateway({ port: 0, stateDir: dir, providers: { openai: { kind: 'openai', baseUrl: fakes.openai.baseUrl } }, log: { ...log, error: (m) => errors.push(m) } });
  const admin = (await http('POST', '/admin/tenants', { tenantId: 'stopping', mode: 'managed', policy: { monthlyBudgetUsd: 10 } })).token;
  await http('POST', '/vault/secrets', { provider: 'openai', apiKey: 'sk-fake-openai-key' }, admin);
  const invoke = (await http('POST', '/vault/tokens', { role: 'invoke', label: 'app' }, admin)).token;
  fakes.script('openai', [{ kind: 'drip', intervalMs: 50 }]);
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${invoke}` },
    body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: Array.from({ length: 80 }, (_, i) => `word${i}`).join(' ') }] }),
  });
  const requestId = res.headers.get('x-request-id');
  const reader = res.body!.getReader();
  await reader.read(); // the stream is under way
  const stopping = gw.stop();
  await expect(reader.read().then(async function drain(r): Promise<unknown> {
    return r.done ? r : drain(await reader.read());
  })).rejects.toThrow(); // cut, not completed
  await stopping;
  gw = undefined;
  const db = new EmbeddedDatabase({ dir });
  try {
    const rows = db.all('SELECT body FROM usage WHERE request_id = ?', [requestId]).map((r) => JSON.parse(String(r.body)));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ decision: 'client_aborted', aborted: true, provider: 'openai' });
    expect(db.all("SELECT sk FROM counters WHERE pk = 'RESV#stopping' AND body IS NOT NULL")).toEqual([]); // reservations are counters rows with a body
    expect(Number(db.one("SELECT sum(spentMicros) AS s FROM counters WHERE pk LIKE 'SPEND#stopping%'")?.s)).toBeGreaterThan(0);
  } finally {
    db.close();
  }
  expect(errors).toEqual([]);
}, 60_000);
