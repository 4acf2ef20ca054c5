import { createAdminApp } from '../../lambda/core/admin-app';
import { openSecret } from '../../lambda/core/envelope';
import { createVaultApp } from '../../lambda/core/vault-app';
import { cellFixture, CellFixture } from '../support/cell-fixture';
import { MotoServer, startMoto } from '../support/moto';

let moto: MotoServer;
let f: CellFixture;
beforeAll(async () => {
  moto = await startMoto();
  f = await cellFixture(moto.endpoint, 'eu-central-1');
});
afterAll(() => moto?.stop());

test('admin creates a tenant, the vault stores a secret, the key opens it', async () => {
  const admin = createAdminApp({ config: f.config, store: f.store, pepper: f.pepper, audit: f.audit });
  const vault = createVaultApp({ config: f.config, store: f.store, pepper: f.pepper, dataKeys: f.dataKeys, usage: f.usage, audit: f.audit, onError: (e) => console.error(e) });
  const created = await admin({ method: 'POST', path: '/admin/tenants', headers: {}, body: JSON.stringify({ tenantId: 'acme', mode: 'managed' }), iamCaller: 'arn:aws:iam::1:user/op' });
  expect(created.status).toBe(201);
  const { token } = JSON.parse(created.body);
  const stored = await vault({ method: 'POST', path: '/vault/secrets', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ provider: 'openai', apiKey: 'sk-canary-1234567890' }) });
  expect([stored.status, stored.body]).toEqual([201, expect.any(String)]);
  const record = await f.store.getSecret('acme', 'openai', 'default');
  const opened = await openSecret({ record: record!, expected: { app: 'sovereign-router', region: 'eu-central-1', tenant: 'acme', provider: 'openai', secret: 'default', version: 1 }, dataKeys: f.dataKeys, erasureKey: await f.store.getErasureKey('acme'), use: (b) => b.toString('utf8') });
  expect(opened).toBe('sk-canary-1234567890');
  const audit = await admin({ method: 'GET', path: '/admin/tenants/acme/audit', headers: {}, iamCaller: 'arn:aws:iam::1:user/op' });
  expect(JSON.parse(audit.body).verification).toEqual(expect.objectContaining({ ok: true, events: 2, findings: [], unanchored: [] }));
});
