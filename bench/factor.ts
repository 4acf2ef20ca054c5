/**
 * Sovereign tenants after a factor rotation: the router opens the token's factor box (X25519 +
 * HKDF + AES-GCM) on every request instead of the generation-1 wrap (HKDF + AES-GCM), and the
 * rotation reseals each secret once (open + seal). Both measured here, in-process.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { openFactorBox, sealFactorBox, tokenPublicKey } from '../lambda/core/factor-box';
import { openSecret, sealSecret } from '../lambda/core/envelope';
import type { DataKeyService } from '../lambda/core/ports';
import { unwrapTenantFactor, wrapTenantFactor } from '../lambda/core/tenant-factor';
import { generateToken } from '../lambda/core/token';

type Record_ = (name: string, value: number, unit: string, goal: number, lowerIsBetter?: boolean, note?: string) => void;

export async function factorBench(record: Record_, kms: DataKeyService): Promise<void> {
  const token = generateToken('euc1', 'acme');
  const b = { token, region: 'eu-central-1', tenant: 'acme', tokenId: 'tk_bench' };
  const F = randomBytes(32);
  const box = sealFactorBox(F, 2, b, tokenPublicKey(b));
  const wrap = wrapTenantFactor(F, b);
  const n = 2_000;
  for (let i = 0; i < 200; i++) openFactorBox(box, b).fill(0);
  let t = performance.now();
  for (let i = 0; i < n; i++) unwrapTenantFactor(wrap, b).fill(0);
  const v1 = ((performance.now() - t) * 1000) / n;
  t = performance.now();
  for (let i = 0; i < n; i++) openFactorBox(box, b).fill(0);
  const boxUs = ((performance.now() - t) * 1000) / n;
  record('sovereign factor per request: generation-1 wrap', v1, 'µs/op', 200);
  record('sovereign factor per request: factor box (after a rotation)', boxUs, 'µs/op', 1500, true, `${(boxUs / v1).toFixed(1)}x the generation-1 wrap; a KMS Decrypt in AWS is ~5-10 ms`);

  // One reseal: open under the old factor and salt, seal under the new ones (in-memory KMS).
  const id = (version: number) => ({ app: 'sovereign-router' as const, region: 'eu-central-1', tenant: 'acme', provider: 'openai', secret: 'default', version });
  const F2 = randomBytes(32);
  const salt1 = randomBytes(32);
  const erasureKey = randomBytes(32);
  const sealed = await sealSecret({ identity: id(1), plaintext: Buffer.from('sk-bench-0123456789'), dataKeys: kms, tenantFactor: F, versionSalt: salt1, fingerprintKey: Buffer.alloc(32, 1), erasureKey });
  const m = 1_000;
  t = performance.now();
  for (let i = 0; i < m; i++) {
    await openSecret({
      record: sealed,
      expected: id(1),
      dataKeys: kms,
      tenantFactor: F,
      versionSalt: salt1,
      erasureKey,
      use: (p) => sealSecret({ identity: id(2), plaintext: p, dataKeys: kms, tenantFactor: F2, versionSalt: randomBytes(32), fingerprintKey: Buffer.alloc(32, 1), erasureKey }),
    });
  }
  record('factor rotation: one reseal (open + seal, in-memory KMS)', ((performance.now() - t) * 1000) / m, 'µs/op', 2000);
}
