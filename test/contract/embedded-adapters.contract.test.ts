import { localAudit } from '../../local/local-audit';
/**
 * Every port's contract suite against the embedded adapters (SQLite, local root key, local
 * pepper) on a database in a temporary state directory. The same suites run against the AWS
 * adapters on moto in aws-adapters.contract.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UsageRecord } from '../../lambda/core/router/usage-record';
import { EmbeddedDatabase } from '../../local/embedded/database';
import { EmbeddedGovernanceLedger } from '../../local/embedded/embedded-governance-ledger';
import { EmbeddedResponseCache } from '../../local/embedded/embedded-response-cache';
import { EmbeddedRouterStore } from '../../local/embedded/embedded-router-store';
import { EmbeddedTenantStore } from '../../local/embedded/embedded-tenant-store';
import { LocalPepper } from '../../local/embedded/local-pepper';
import { LocalRootKey } from '../../local/embedded/local-root-key';
import type { ContractBackend } from './backend';
import { dataKeysContract } from './data-keys.contract';
import { governanceLedgerContract } from './governance-ledger.contract';
import { pepperContract } from './pepper.contract';
import { responseCacheContract } from './response-cache.contract';
import { routerStoreContract } from './router-store.contract';
import { tenantStoreContract } from './tenant-store.contract';
import { factorChangeContract } from './factor-change.contract';

const REGION = 'eu-central-1';
const dirs: string[] = [];
const dbs: EmbeddedDatabase[] = [];

/**
 * The embedded adapters over a fresh state directory. `soleRequest`: the database is told that
 * each caller is the only request in flight, as the local gateway does at 1 client, so writes take
 * the journal-first paths (a reservation or settle journaled, its SQL run after the caller goes on).
 */
function embeddedBackend(name: string, soleRequest?: () => boolean): ContractBackend {
  const dir = mkdtempSync(join(tmpdir(), 'sr-contract-'));
  dirs.push(dir);
  const db = new EmbeddedDatabase({ dir, soleRequest });
  dbs.push(db);
  const audit = localAudit(dir, { info: () => undefined, warn: () => undefined, error: () => undefined });
  const rootKey = LocalRootKey.open(REGION, dir);
  const sql = (s: string, p: (string | number | null)[]) => db.run(s, p);
  const text = (v: unknown) => (typeof v === 'number' || typeof v === 'string' ? v : v === undefined ? null : JSON.stringify(v));
  return {
    name,
    region: REGION,
    store: new EmbeddedTenantStore(db, audit.trail),
    audit,
    routerStore: new EmbeddedRouterStore(db),
    ledger: new EmbeddedGovernanceLedger(db),
    dataKeys: rootKey,
    keyArn: rootKey.keyArn,
    pepper: LocalPepper.open(dir),
    responseCache: new EmbeddedResponseCache(db),
    raw: {
      async putSecretRow(tenantId, provider, name, fields) {
        sql('INSERT OR REPLACE INTO secrets(tenant_id, provider, name, version, body) VALUES (?, ?, ?, ?, ?)', [tenantId, provider, name, Number(fields.version ?? 1), JSON.stringify(fields)]);
      },
      async deleteSecretRow(tenantId, provider, name) {
        sql('DELETE FROM secrets WHERE tenant_id = ? AND provider = ? AND name = ?', [tenantId, provider, name]);
      },
      async putCounterRow(pk, sk, f) {
        sql('INSERT OR REPLACE INTO counters(pk, sk, spentMicros, reservedMicros, committedMicros, requests, tokens) VALUES (?, ?, ?, ?, ?, ?, ?)', [
          pk,
          sk,
          text(f.spentMicros),
          text(f.reservedMicros),
          text(f.committedMicros),
          text(f.requests),
          text(f.tokens),
        ] as (string | number | null)[]);
      },
      async putReservationRow(pk, sk, f) {
        sql('INSERT OR REPLACE INTO counters(pk, sk, reclaim_after, expires_at, body) VALUES (?, ?, ?, ?, ?)', [pk, sk, Number(f.reclaimAfter ?? 0), 0, JSON.stringify({ ...f, key: { pk, sk } })]);
      },
      async putErasureKeyItem(tenantId, fields) {
        sql('INSERT OR REPLACE INTO erasure_keys(tenant_id, body) VALUES (?, ?)', [tenantId, JSON.stringify({ ...fields, tenantId })]);
      },
      async usageRecords(tenantId) {
        return db.all('SELECT body FROM usage WHERE tenant_id = ? ORDER BY sk', [tenantId]).map((r) => JSON.parse(String(r.body)) as UsageRecord);
      },
      async reservations(tenantId) {
        return db.all('SELECT sk FROM counters WHERE pk = ? AND body IS NOT NULL ORDER BY sk', [`RESV#${tenantId}`]).map((r) => String(r.sk));
      },
    },
  };
}

let backend: ContractBackend;
let sole: ContractBackend;
beforeAll(() => {
  backend = embeddedBackend('embedded adapters');
  sole = embeddedBackend('embedded adapters, one request in flight', () => true);
});
afterAll(() => {
  for (const db of dbs) db.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const factory = () => backend;
tenantStoreContract('embedded adapters', factory);
factorChangeContract('embedded adapters', factory);
routerStoreContract('embedded adapters', factory);
governanceLedgerContract('embedded adapters', factory);
governanceLedgerContract('embedded adapters, one request in flight (journal first)', () => sole);
dataKeysContract('embedded adapters', factory);
pepperContract('embedded adapters', factory);
responseCacheContract('embedded adapters', factory);
