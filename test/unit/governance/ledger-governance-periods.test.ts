/**
 * The counters' keys and expiries of requests that cross a minute and a month boundary, for two
 * tenants and two tokens interleaved: the per-process memos of the token counter id and of the
 * month's and window's expiry (keys.ts, ledger-governance.ts) must answer exactly what the
 * formulas give for each request's own time, never the previous request's.
 */
import { createHash } from 'node:crypto';
import { EmbeddedDatabase } from '../../../local/embedded/database';
import { EmbeddedGovernance } from '../../../local/embedded/embedded-governance-ledger';
import { epochSeconds, monthEndMs, monthKey, WINDOW_MS, windowKey } from '../../../lambda/core/governance/periods';
import type { AdmissionRequest } from '../../../lambda/core/router/governance';

const DAY_MS = 24 * 3600 * 1000;
const digest = (v: string) => 'k' + createHash('sha256').update(`sovereign-router/governance-counter/v1\0${v}`).digest('hex').slice(0, 32);

function request(tenantId: string, verifier: string, at: number, n: number): AdmissionRequest {
  return {
    requestId: `req-${n}`,
    startedAt: at,
    deadlineAt: at + 60_000,
    tenant: { tenantId, region: 'eu-central-1', mode: 'managed', status: 'active', policy: { monthlyBudgetUsd: 100, rpm: 1000 }, createdAt: '', updatedAt: '', auditSeq: 0, auditHead: '' },
    token: { verifier, tokenId: `tok-${verifier.slice(0, 4)}`, tenantId, role: 'invoke', createdAt: '' },
    model: 'gpt-4o',
    maxTokens: 10,
    promptTokenEstimate: 10,
    targets: [{ provider: 'openai', kind: 'openai', baseUrl: 'https://api.openai.com', model: 'gpt-4o', secret: 'default' }],
  };
}

test('requests across a minute and a month boundary, two tenants and tokens interleaved: every counter row has its own period and expiry', async () => {
  const db = new EmbeddedDatabase();
  let now = 0;
  const g = new EmbeddedGovernance(db, { now: () => now });
  const monthEnd = Date.UTC(2025, 6, 1); // 2025-07-01T00:00:00Z
  const times = [monthEnd - 61_000, monthEnd - 59_999, monthEnd - 1, monthEnd, monthEnd + 1, monthEnd + 60_000, monthEnd - 2, monthEnd + 59_999];
  const callers = [
    ['acme', 'ab'.repeat(32)],
    ['beta', 'cd'.repeat(32)],
    ['acme', 'ef'.repeat(32)],
  ] as const;
  let n = 0;
  for (const at of times) {
    for (const [tenantId, verifier] of callers) {
      now = at;
      const admitted = await g.reserve(request(tenantId, verifier, at, n++));
      await admitted.settle({ inputTokens: 3, outputTokens: 4 }, request(tenantId, verifier, at, n).targets[0]);
      await db.durable();
      // The rows this request wrote are those of its own month and minute.
      for (const pk of [`SPEND#${tenantId}`, `SPEND#${tenantId}#${digest(verifier)}`]) {
        expect(db.one('SELECT expires_at FROM counters WHERE pk = ? AND sk = ?', [pk, monthKey(at)])).toEqual({ expires_at: epochSeconds(monthEndMs(monthKey(at)) + 400 * DAY_MS) });
      }
      for (const pk of [`RATE#${tenantId}`, `RATE#${tenantId}#${digest(verifier)}`]) {
        const w = windowKey(at);
        expect(db.one('SELECT expires_at FROM counters WHERE pk = ? AND sk = ?', [pk, w])).toEqual({ expires_at: epochSeconds(Date.parse(w) + WINDOW_MS + 20 * 60_000) });
      }
    }
  }
  // Every row's expiry follows from its own key, whichever request wrote it first or last.
  for (const row of db.all("SELECT pk, sk, expires_at FROM counters WHERE pk NOT LIKE 'RESV#%'")) {
    const sk = String(row.sk);
    const expected = String(row.pk).startsWith('SPEND#') ? monthEndMs(sk) + 400 * DAY_MS : Date.parse(sk) + WINDOW_MS + 20 * 60_000;
    expect(row.expires_at).toBe(epochSeconds(expected));
  }
  expect(db.all("SELECT DISTINCT sk FROM counters WHERE pk LIKE 'SPEND#%' ORDER BY sk").map((r) => r.sk)).toEqual(['2025-06', '2025-07']);
  db.close();
});
