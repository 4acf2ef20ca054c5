import { PriceBook } from '../../../lambda/core/governance/prices';
import { KNOWN_MODELS } from '../../../lambda/core/routing/known-models';
import { modelList } from '../../../lambda/core/router/model-list';
import type { Limits, TenantPolicy, TenantRecord, TokenRecord } from '../../../lambda/core/tenant-model';

const providers = {
  openai: { kind: 'openai', baseUrl: 'https://api.openai.com' },
  anthropic: { kind: 'anthropic', baseUrl: 'https://api.anthropic.com' },
  mistral: { kind: 'mistral', baseUrl: 'https://api.mistral.ai' },
  vllm: { kind: 'openai-compatible', baseUrl: 'https://llm.internal.example.com' },
} as const;

const tenant = (policy: TenantPolicy = {}): TenantRecord => ({
  tenantId: 'acme',
  region: 'eu-central-1',
  mode: 'managed',
  status: 'active',
  policy,
  createdAt: '2026-01-01T00:00:00Z',
  updatedAt: '2026-01-01T00:00:00Z',
  auditSeq: 0,
  auditHead: 'x',
});
const token = (limits?: Limits): TokenRecord => ({ verifier: 'v', tokenId: 't1', tenantId: 'acme', role: 'invoke', createdAt: '2026-01-01T00:00:00Z', ...(limits ? { limits } : {}) });
const stored = (...ids: string[]) => new Set(ids.map((p) => `${p}#default`));
const list = (o: { policy?: TenantPolicy; limits?: Limits; secrets?: Set<string>; prices?: any; cell?: Record<string, { kind: any; baseUrl: string }> } = {}) =>
  modelList({ tenant: tenant(o.policy), token: token(o.limits), providers: o.cell ?? providers, prices: o.prices, storedSecrets: o.secrets ?? stored('openai', 'anthropic', 'mistral', 'vllm') });
const owners = (l: ReturnType<typeof modelList>) => Object.fromEntries(l.data.map((m) => [m.id, m.owned_by]));

test('every built-in known model has its own price (never the fallback)', () => {
  const book = new PriceBook();
  for (const [kind, models] of Object.entries(KNOWN_MODELS)) {
    for (const model of models ?? []) expect([model, book.lookup({ provider: kind, kind, model }).source]).not.toEqual([model, 'fallback']);
  }
});

test('no policy: the providers’ default models, each owned by the provider that serves it', () => {
  const l = list();
  expect(l.object).toBe('list');
  const o = owners(l);
  expect(o['gpt-4o-mini']).toBe('openai');
  expect(o['claude-sonnet-4-5']).toBe('anthropic');
  expect(o['mistral-small-latest']).toBe('mistral');
  expect(l.data.length).toBe(Object.values(KNOWN_MODELS).flat().length);
  expect(l.data.every((m) => m.object === 'model' && m.created === 0)).toBe(true);
  expect(l.data.map((m) => m.id)).toEqual([...l.data.map((m) => m.id)].sort());
});

test('only providers with a stored key: the tenant may not use the others', () => {
  const o = owners(list({ secrets: stored('anthropic') }));
  expect(Object.values(o).every((p) => p === 'anthropic')).toBe(true);
  expect(o['claude-haiku-4-5']).toBe('anthropic');
  expect(list({ secrets: stored() }).data).toEqual([]);
});

test('a second provider of a kind is listed as provider/model; the operator’s priced models of its own endpoint too', () => {
  const cell = { ...providers, 'openai-eu': { kind: 'openai', baseUrl: 'https://eu.api.openai.com' } };
  const prices = { models: { vllm: { 'llama-3.1-8b': { input: 0.1, output: 0.1 }, '': { input: 1, output: 1 } } } };
  const o = owners(list({ cell, prices, secrets: stored('openai', 'openai-eu', 'vllm') }));
  expect(o['gpt-4o']).toBe('openai');
  expect(o['openai-eu/gpt-4o']).toBe('openai-eu');
  expect(o['vllm/llama-3.1-8b']).toBe('vllm');
  expect(Object.keys(o).some((id) => id === 'vllm/' || id.endsWith('/'))).toBe(false);
  // Without openai's own key, the bare names are not usable, the openai-eu ones are.
  const eu = owners(list({ cell, secrets: stored('openai-eu') }));
  expect(eu['gpt-4o']).toBeUndefined();
  expect(eu['openai-eu/gpt-4o']).toBe('openai-eu');
});

test('allowlists (tenant and token, the stricter wins) limit the list to what passes and routes', () => {
  const policy: TenantPolicy = {
    allowedModels: ['gpt-4o-mini', 'claude-haiku-4-5', 'fast', 'not-a-model', 'mistral-small-latest'],
    routes: { fast: [{ provider: 'mistral', model: 'mistral-small-latest' }, { provider: 'openai', model: 'gpt-4o-mini' }], hidden: [{ provider: 'openai', model: 'gpt-4o' }] },
  };
  expect(owners(list({ policy }))).toEqual({ 'claude-haiku-4-5': 'anthropic', fast: 'mistral', 'gpt-4o-mini': 'openai', 'mistral-small-latest': 'mistral' });
  expect(owners(list({ policy, limits: { allowedModels: ['fast', 'gpt-4o'] } }))).toEqual({ fast: 'mistral' });
});

test('a route alias is owned by its first target with a key; a route to no usable provider is not listed', () => {
  const policy: TenantPolicy = {
    routes: {
      smart: [{ provider: 'anthropic', model: 'claude-sonnet-4-5' }, { provider: 'openai', model: 'gpt-4o' }],
      elsewhere: [{ provider: 'gone', model: 'x' }],
      named: [{ provider: 'mistral', model: 'mistral-large-latest', secret: 'team-b' }],
    },
  };
  expect(owners(list({ policy, secrets: stored('openai') }))).toMatchObject({ smart: 'openai', named: 'mistral' });
  expect(owners(list({ policy }))).toMatchObject({ smart: 'anthropic' });
  expect(owners(list({ policy })).elsewhere).toBeUndefined();
});
