/**
 * ResponseCacheStore contract: opaque sealed bytes stored and returned exactly by key, an entry
 * at or past its expiry never returned (TTL deletion is lazy in DynamoDB and periodic locally),
 * a put replacing the entry under the same key, and keys independent of each other.
 */
import { randomBytes } from 'node:crypto';
import type { StoredCacheEntry } from '../../lambda/core/cache/port';
import { BackendFactory, ContractBackend } from './backend';

export function responseCacheContract(name: string, factory: BackendFactory): void {
  describe(`ResponseCacheStore contract: ${name}`, () => {
    let b: ContractBackend;
    beforeAll(() => {
      b = factory();
    });
    const now = 1_900_000_000;
    const entry = (over: Partial<StoredCacheEntry> = {}): StoredCacheEntry => ({
      key: randomBytes(32).toString('hex'),
      tenantId: 'acme',
      expiresAt: now + 60,
      sealed: randomBytes(200),
      ...over,
    });

    test('a missing key is undefined', async () => {
      expect(await b.responseCache.get(randomBytes(32).toString('hex'), now)).toBeUndefined();
    });

    test('round trip: every byte (0x00 and 0xff included), tenant and expiry as written; large entries fit', async () => {
      const sealed = Buffer.concat([Buffer.from([0, 255, 0, 1]), randomBytes(300 * 1024)]);
      const e = entry({ sealed });
      await b.responseCache.put(e);
      const got = await b.responseCache.get(e.key, now);
      expect(got && { ...got, sealed: Buffer.from(got.sealed).toString('base64') }).toEqual({ ...e, sealed: sealed.toString('base64') });
    });

    test('never returns an entry at or past its expiry', async () => {
      const e = entry({ expiresAt: now + 10 });
      await b.responseCache.put(e);
      expect(await b.responseCache.get(e.key, now + 9)).toBeDefined();
      expect(await b.responseCache.get(e.key, now + 10)).toBeUndefined();
      expect(await b.responseCache.get(e.key, now + 11)).toBeUndefined();
    });

    test('a put replaces the entry under its key; other keys are untouched', async () => {
      const a = entry();
      const other = entry();
      await b.responseCache.put(a);
      await b.responseCache.put(other);
      const replacement = { ...a, tenantId: 'globex', expiresAt: now + 500, sealed: randomBytes(64) };
      await b.responseCache.put(replacement);
      const got = await b.responseCache.get(a.key, now);
      expect([got?.tenantId, got?.expiresAt, Buffer.from(got!.sealed).equals(Buffer.from(replacement.sealed))]).toEqual(['globex', now + 500, true]);
      expect(Buffer.from((await b.responseCache.get(other.key, now))!.sealed).equals(Buffer.from(other.sealed))).toBe(true);
    });
  });
}
