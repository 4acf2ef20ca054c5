/**
 * CPU of the guardrail stage and of the response cache's per-request crypto, in-process (no I/O).
 * `BENCH_ONLY=guardrails npm run bench`.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { openCacheEntry, sealCacheEntry } from '../lambda/core/cache/entry';
import { cacheEntryKey, deriveTenantCacheKeys } from '../lambda/core/cache/keys';
import { canonicalCacheRequest } from '../lambda/core/cache/stage';
import { judgeRequest } from '../lambda/core/guardrails/judge';
import { effectiveGuardrails } from '../lambda/core/guardrails/policy';
import type { Target } from '../lambda/core/routing/types';

type Record = (name: string, value: number, unit: string, goal: number) => void;

const PARA = 'The quick brown fox jumps over the lazy dog; write to someone@example.com, order 12345678 shipped on 2024-01-15. ';

function perOp(n: number, f: () => unknown): number {
  for (let i = 0; i < Math.min(n, 200); i++) f();
  const t = performance.now();
  for (let i = 0; i < n; i++) f();
  return (performance.now() - t) / n;
}

export function guardrailsCacheBench(record: Record): void {
  const one = effectiveGuardrails({ personalData: { card: 'refuse' } })!;
  const all = effectiveGuardrails({
    personalData: { email: 'redact', phone: 'redact', card: 'refuse', iban: 'refuse' },
    blockedTerms: Array.from({ length: 50 }, (_, i) => `blocked phrase ${i}`),
    maxInputTokens: 10_000_000,
  })!;
  const body = (bytes: number) => ({ model: 'm', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: PARA.repeat(Math.ceil(bytes / PARA.length)).slice(0, bytes) }] });
  const small = body(2048);
  const large = body(1 << 20);
  record('guardrails, 2 KiB request, one rule (card)', perOp(5_000, () => judgeRequest('chat', small, one)) * 1000, 'µs/op', 200);
  record('guardrails, 2 KiB request, every rule + 50 terms (redacting)', perOp(5_000, () => judgeRequest('chat', small, all)) * 1000, 'µs/op', 1_000);
  record('guardrails, 1 MiB request, every rule + 50 terms (redacting)', perOp(5, () => judgeRequest('chat', large, all)), 'ms/op', 400);

  const pepper = randomBytes(48);
  const targets = [{ provider: 'openai', model: 'gpt-4o-mini', secret: 'default' }] as unknown as Target[];
  const client = { route: 'chat' as const, body: small, model: 'm', stream: false, promptTokenEstimate: 512 };
  const answer = { kind: 'json' as const, body: JSON.stringify({ choices: [{ message: { content: PARA.repeat(20) } }] }) };
  record(
    'cache: tenant keys + canonical key + seal + open (2 KiB in, 2 KiB out)',
    perOp(5_000, () => {
      const keys = deriveTenantCacheKeys(pepper, 'eu-central-1', 'acme');
      const key = cacheEntryKey(keys.lookup, canonicalCacheRequest({ region: 'eu-central-1', tenantId: 'acme', client, targets }));
      const id = { region: 'eu-central-1', tenantId: 'acme', key, expiresAt: 1_900_000_000 };
      openCacheEntry(keys.seal, id, sealCacheEntry(keys.seal, id, answer));
    }) * 1000,
    'µs/op',
    1_000,
  );
}
