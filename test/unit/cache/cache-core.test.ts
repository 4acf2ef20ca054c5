import { randomBytes } from 'node:crypto';
import { canonicalJson } from '../../../lambda/core/cache/canonical-json';
import { openCacheEntry, sealCacheEntry } from '../../../lambda/core/cache/entry';
import { cacheEntryKey, deriveTenantCacheKeys } from '../../../lambda/core/cache/keys';
import { cachePolicySchema, cacheTtlFor } from '../../../lambda/core/cache/policy';
import { canonicalCacheRequest, replayChunks } from '../../../lambda/core/cache/stage';
import type { ClientRequest } from '../../../lambda/core/router/client-request';
import type { Target } from '../../../lambda/core/routing/types';

const pepper = randomBytes(32);
const client = (body: Record<string, unknown>, over: Partial<ClientRequest> = {}): ClientRequest => ({
  route: 'chat',
  body,
  model: String(body.model),
  stream: body.stream === true,
  promptTokenEstimate: 1,
  ...over,
});
const targets = [{ provider: 'openai', model: 'gpt-4o-mini', secret: 'default' }, { provider: 'anthropic', model: 'claude', secret: 'default' }] as unknown as Target[];
const keyOf = (tenantId: string, c: ClientRequest, t: readonly Target[] = targets, factor?: Buffer) =>
  cacheEntryKey(deriveTenantCacheKeys(pepper, 'eu-central-1', tenantId, factor).lookup, canonicalCacheRequest({ region: 'eu-central-1', tenantId, client: c, targets: t }));

describe('canonical request and entry keys', () => {
  test('canonical JSON sorts keys at every depth and keeps arrays in order (RFC 8785 for parsed JSON)', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 'x', c: null }, 2.5], é: true })).toBe('{"a":[{"c":null,"d":"x"},2.5],"b":1,"é":true}');
    expect(canonicalJson(JSON.parse('{"n": 1e21, "s": "\\u2028"}'))).toBe('{"n":1e+21,"s":"\u2028"}');
  });

  test('the same request has one key whatever its key order; anything that shapes the answer changes it', () => {
    const base = keyOf('acme', client({ model: 'm', messages: [{ role: 'user', content: 'hi' }], temperature: 0 }));
    expect(keyOf('acme', client({ temperature: 0, messages: [{ content: 'hi', role: 'user' }], model: 'm' }))).toBe(base);
    expect(keyOf('acme', client({ model: 'm', messages: [{ role: 'user', content: 'hi' }], temperature: 0 }), [...targets].reverse())).toBe(base);
    const variants = [
      keyOf('globex', client({ model: 'm', messages: [{ role: 'user', content: 'hi' }], temperature: 0 })),
      keyOf('acme', client({ model: 'm', messages: [{ role: 'user', content: 'hi!' }], temperature: 0 })),
      keyOf('acme', client({ model: 'm', messages: [{ role: 'user', content: 'hi' }], temperature: 0, stream: true })),
      keyOf('acme', client({ model: 'm', messages: [{ role: 'user', content: 'hi' }], temperature: 0 }, { maxTokens: 10 })),
      keyOf('acme', client({ model: 'm', messages: [{ role: 'user', content: 'hi' }], temperature: 0 }, { route: 'messages' })),
      keyOf('acme', client({ model: 'm', messages: [{ role: 'user', content: 'hi' }], temperature: 0 }), targets.slice(0, 1)),
      keyOf('acme', client({ model: 'm', messages: [{ role: 'user', content: 'hi' }], temperature: 0 }), targets, randomBytes(32)),
    ];
    expect(new Set([base, ...variants]).size).toBe(variants.length + 1);
  });

  test('tenant keys: per tenant, per region, per pepper, and a sovereign factor changes both', () => {
    const k = (p: Buffer, region: string, tenant: string, f?: Buffer) => deriveTenantCacheKeys(p, region, tenant, f);
    const base = k(pepper, 'eu-central-1', 'acme');
    const others = [k(pepper, 'eu-central-1', 'acmf'), k(pepper, 'eu-west-1', 'acme'), k(randomBytes(32), 'eu-central-1', 'acme'), k(pepper, 'eu-central-1', 'acme', randomBytes(32))];
    for (const o of others) {
      expect(o.lookup.equals(base.lookup)).toBe(false);
      expect(o.seal.equals(base.seal)).toBe(false);
    }
    expect(base.lookup.equals(base.seal)).toBe(false);
  });
});

describe('sealed entries', () => {
  const seal = deriveTenantCacheKeys(pepper, 'eu-central-1', 'acme').seal;
  const id = { region: 'eu-central-1', tenantId: 'acme', key: 'ab'.repeat(32), expiresAt: 1_900_000_000 };
  const response = { kind: 'json' as const, body: '{"secret":"answer text"}', provider: 'openai', upstreamModel: 'gpt-4o-mini' };

  test('round trip; ciphertext does not contain the answer', () => {
    const sealed = sealCacheEntry(seal, id, response);
    expect(sealed.toString('latin1')).not.toContain('answer text');
    expect(openCacheEntry(seal, id, sealed)).toEqual(response);
  });

  test('another tenant, key, expiry or region, another seal key, a flipped bit or a truncation: nothing opens', () => {
    const sealed = sealCacheEntry(seal, id, response);
    for (const other of [{ ...id, tenantId: 'globex' }, { ...id, key: 'cd'.repeat(32) }, { ...id, expiresAt: id.expiresAt + 1 }, { ...id, region: 'eu-west-1' }]) {
      expect(openCacheEntry(seal, other, sealed)).toBeUndefined();
    }
    expect(openCacheEntry(deriveTenantCacheKeys(pepper, 'eu-central-1', 'globex').seal, id, sealed)).toBeUndefined();
    for (const i of [0, 5, 20, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[i] ^= 1;
      expect(openCacheEntry(seal, id, bad)).toBeUndefined();
    }
    expect(openCacheEntry(seal, id, sealed.subarray(0, 20))).toBeUndefined();
  });
});

describe('policy and replay', () => {
  test('opt-in per route and API; TTL bounds', () => {
    const p = cachePolicySchema.parse({ ttlSeconds: 60, routes: ['smart'], apis: ['chat', 'messages'] });
    expect([cacheTtlFor(p, 'chat', 'smart'), cacheTtlFor(p, 'chat', 'other'), cacheTtlFor(p, 'embeddings', 'smart'), cacheTtlFor(undefined, 'chat', 'smart')]).toEqual([60, undefined, undefined, undefined]);
    // The Responses API is never cached: its answers are tied to state at the provider.
    expect(cacheTtlFor(cachePolicySchema.parse({ ttlSeconds: 60 }), 'responses', 'smart')).toBeUndefined();
    expect(cachePolicySchema.safeParse({ ttlSeconds: 0 }).success).toBe(false);
    expect(cachePolicySchema.safeParse({ ttlSeconds: 8 * 24 * 3600 }).success).toBe(false);
    expect(cachePolicySchema.safeParse({ ttlSeconds: 60, apis: ['models'] }).success).toBe(false);
  });

  test('a stream replays event by event; JSON in one piece', () => {
    const sse = 'event: a\ndata: {"x":1}\n\nevent: b\ndata: {"y":"two\\n\\nlines"}\n\ndata: [DONE]\n\n';
    expect(replayChunks({ kind: 'sse', body: sse })).toEqual(['event: a\ndata: {"x":1}\n\n', 'event: b\ndata: {"y":"two\\n\\nlines"}\n\n', 'data: [DONE]\n\n']);
    expect(replayChunks({ kind: 'json', body: '{"a":"\n\n"}' })).toEqual(['{"a":"\n\n"}']);
  });
});
