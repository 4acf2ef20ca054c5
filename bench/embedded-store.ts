/**
 * CPU of the embedded store's share of one governed request, in-process (no HTTP, no provider):
 * the router's one read (token, tenant, default secret, erasure key, counters), the reservation,
 * the settle and the usage record, through the real adapters (EmbeddedRouterStore,
 * LedgerGovernance over EmbeddedGovernanceLedger) on a database in a temporary state directory.
 * One client (each request alone in flight, so its reservation and settle are journaled, as in the
 * gateway at one client) and 16 (16 requests per turn, as a
 * loaded gateway interleaves them). Checkpoints run as in the gateway (timer), inside the window.
 * `BENCH_ONLY=store npm run bench`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AUDIT_GENESIS } from '../lambda/core/audit-chain';
import type { TenantRecord, TokenRecord } from '../lambda/core/tenant-model';
import type { AdmissionRequest } from '../lambda/core/router/governance';
import type { UsageRecord } from '../lambda/core/router/usage-record';
import { EmbeddedDatabase } from '../local/embedded/database';
import { EmbeddedGovernance } from '../local/embedded/embedded-governance-ledger';
import { EmbeddedRouterStore } from '../local/embedded/embedded-router-store';

type Record = (name: string, value: number, unit: string, goal: number) => void;

const NOW = new Date().toISOString();
const tenant: TenantRecord = { tenantId: 'bench', region: 'eu-central-1', mode: 'managed', status: 'active', policy: { monthlyBudgetUsd: 100_000 }, createdAt: NOW, updatedAt: NOW, auditSeq: 3, auditHead: AUDIT_GENESIS };
const token: TokenRecord = { verifier: 'a'.repeat(64), tokenId: 'tk_bench0000001', tenantId: 'bench', role: 'invoke', createdAt: NOW };
const target = { provider: 'openai', model: 'gpt-4o-mini', secret: 'default' } as unknown as AdmissionRequest['targets'][number];

/** CPU ms per request of `requests` storage paths run `concurrency` at a time, over `stored` usage records already there. */
export async function storeCpuPerRequest(concurrency: number, requests: number, stored = 0): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'sr-bench-store-'));
  // As the gateway tells it (local/embedded-backend.ts): whether the writer is the only request in flight.
  let inFlight = 0;
  const db = new EmbeddedDatabase({ dir, soleRequest: () => inFlight === 1 });
  try {
    db.transaction(() => {
      db.run('INSERT INTO tenants(tenant_id, body) VALUES (?, ?)', ['bench', JSON.stringify(tenant)]);
      db.run('INSERT INTO tokens(verifier, tenant_id, token_id, body) VALUES (?, ?, ?, ?)', [token.verifier, 'bench', token.tokenId, JSON.stringify(token)]);
      const sealed = { formatVersion: 2, keyArn: 'local:root', wrappedKey: 'w'.repeat(300), iv: 'i'.repeat(16), ciphertext: 'c'.repeat(80), tag: 't'.repeat(24), tenant: 'bench', provider: 'openai', secret: 'default', version: 1, region: 'eu-central-1', createdAt: NOW };
      db.run('INSERT INTO secrets(tenant_id, provider, name, version, body) VALUES (?, ?, ?, ?, ?)', ['bench', 'openai', 'default', 1, JSON.stringify(sealed)]);
      db.run('INSERT INTO erasure_keys(tenant_id, body) VALUES (?, ?)', ['bench', JSON.stringify({ tenantId: 'bench', key: 'k'.repeat(44), createdAt: NOW })]);
      const base = Date.now() - 30 * 24 * 3600 * 1000;
      const body = JSON.stringify({ requestId: 'seed', tenantId: 'bench', tokenId: token.tokenId, route: 'chat', model: 'gpt-4o-mini', status: 200, decision: 'ok', costUsd: 0.000002, pad: 'p'.repeat(400) });
      for (let i = 0; i < stored; i++) {
        const at = new Date(base + i * 20).toISOString();
        db.run('INSERT INTO usage(tenant_id, sk, at, request_id, expires_at, body) VALUES (?, ?, ?, ?, ?, ?)', ['bench', `${at}#seed-${i}`, at, `seed-${i}`, 2_000_000_000, body]);
      }
    });
    db.checkpoint();
    const store = new EmbeddedRouterStore(db);
    const governance = new EmbeddedGovernance(db);
    let n = 0;
    const one = async (): Promise<void> => {
      inFlight++;
      try {
        await request();
      } finally {
        inFlight--;
      }
    };
    const request = async (): Promise<void> => {
      const requestId = `req-${(n++).toString().padStart(8, '0')}-0000-0000-000000000000`;
      const startedAt = Date.now();
      const keys = governance.counterKeys({ tenantId: 'bench', verifier: token.verifier, now: startedAt });
      const read = await store.loadRequestContext(token.verifier, 'bench', ['openai'], keys);
      if (!read.token || !read.tenant) throw new Error('bench: the read found nothing');
      const req: AdmissionRequest = { requestId, startedAt, deadlineAt: startedAt + 30_000, tenant, token, model: 'gpt-4o-mini', promptTokenEstimate: 8, maxTokens: 16, targets: [target] };
      governance.check(req, read.counters);
      const admission = await governance.reserve(req);
      const { costUsd } = await admission.settle({ inputTokens: 8, outputTokens: 1 } as never, target);
      const usage: UsageRecord = {
        requestId, tenantId: 'bench', tokenId: token.tokenId, route: 'chat', model: 'gpt-4o-mini', stream: false,
        fallbackChain: [{ provider: 'openai', model: 'gpt-4o-mini', outcome: 'ok', latencyMs: 8 }] as never,
        keyUses: [{ context: { app: 'sovereign-router', region: 'eu-central-1', tenant: 'bench', provider: 'openai', secret: 'default', version: '1' }, at: NOW }] as never,
        at: new Date(startedAt).toISOString(), status: 200, decision: 'ok', provider: 'openai', upstreamModel: 'gpt-4o-mini', inputTokens: 8, outputTokens: 1, costUsd, latencyMs: 21,
      } as UsageRecord;
      await store.putUsage(usage);
    };
    const run = async (count: number) => {
      for (let done = 0; done < count; done += concurrency) await Promise.all(Array.from({ length: concurrency }, one));
    };
    await run(Math.min(2_000, requests)); // warm: statements prepared, cache filled, JIT
    const before = process.cpuUsage();
    await run(requests);
    const used = process.cpuUsage(before);
    return (used.user + used.system) / 1000 / requests;
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Goals: what this machine did after group commit, the row cache and the statement work (about
 * 125 µs and 80 µs; the same flow cost about 165 µs and 175 µs before), with room for noise.
 */
export async function embeddedStoreBench(record: Record): Promise<void> {
  const requests = Number(process.env.BENCH_STORE_REQUESTS ?? 20_000);
  record('embedded store CPU per governed request, 1 client', (await storeCpuPerRequest(1, requests)) * 1000, 'µs', 150);
  record('embedded store CPU per governed request, 16 clients', (await storeCpuPerRequest(16, requests)) * 1000, 'µs', 120);
  // Flat as data grows: the same with 100,000 usage records stored (no request-path query reads
  // them), interleaved over rounds, medians (the machine is shared: single runs vary by ±30%).
  const none: number[] = [];
  const many: number[] = [];
  for (let round = 0; round < 5; round++) {
    none.push(await storeCpuPerRequest(1, requests / 2));
    many.push(await storeCpuPerRequest(1, requests / 2, 100_000));
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  record('embedded store CPU, 100,000 usage records stored vs none (1 client)', median(many) / median(none), '×', 1.1);
}
