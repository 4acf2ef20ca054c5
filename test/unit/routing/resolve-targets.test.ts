import { InvalidModelError, resolveTargets } from '../../../lambda/core/routing/resolve-targets';
import { NoRouteError } from '../../../lambda/core/routing/types';
import type { ProviderEndpointConfig } from '../../../lambda/core/cell-config';
import type { TenantPolicy } from '../../../lambda/core/tenant-model';

const EU: Record<string, ProviderEndpointConfig> = {
  openai: { kind: 'openai', baseUrl: 'https://eu.api.openai.com' },
  anthropic: { kind: 'anthropic', baseUrl: 'https://api.anthropic.com' },
  mistral: { kind: 'mistral', baseUrl: 'https://api.mistral.ai' },
  'my-vllm': { kind: 'openai-compatible', baseUrl: 'http://127.0.0.1:8000' },
};
const none: TenantPolicy = {};

function noRoute(fn: () => unknown): NoRouteError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(NoRouteError);
    return err as NoRouteError;
  }
  throw new Error('expected a NoRouteError');
}

describe('aliases', () => {
  const policy: TenantPolicy = {
    routes: {
      smart: [
        { provider: 'anthropic', model: 'claude-sonnet-4-5', secret: 'team-a' },
        { provider: 'openai', model: 'gpt-4o' },
      ],
      'gpt-4o': [{ provider: 'mistral', model: 'mistral-large-latest' }],
      balanced: [
        { provider: 'openai', model: 'gpt-4o', weight: 1 },
        { provider: 'mistral', model: 'mistral-large-latest' },
        { provider: 'anthropic', model: 'claude-sonnet-4-5', weight: 3 },
      ],
      'us-only': [{ provider: 'bedrock-us', model: 'x' }],
      mixed: [
        { provider: 'bedrock-us', model: 'x' },
        { provider: 'my-vllm', model: 'llama-3.1-8b' },
      ],
      'embed-any': [
        { provider: 'anthropic', model: 'claude-haiku-4-5' },
        { provider: 'openai', model: 'text-embedding-3-small' },
      ],
      'embed-claude': [{ provider: 'anthropic', model: 'claude-haiku-4-5' }],
    },
  };

  it('returns the targets in order with endpoint data and the secret (default "default")', () => {
    expect(resolveTargets('smart', { policy, providers: EU })).toEqual([
      { provider: 'anthropic', kind: 'anthropic', baseUrl: 'https://api.anthropic.com', model: 'claude-sonnet-4-5', secret: 'team-a' },
      { provider: 'openai', kind: 'openai', baseUrl: 'https://eu.api.openai.com', model: 'gpt-4o', secret: 'default' },
    ]);
  });

  it('an alias wins over inference and over provider/model', () => {
    expect(resolveTargets('gpt-4o', { policy, providers: EU }).map((t) => t.provider)).toEqual(['mistral']);
  });

  it('draws the primary among weighted targets by weight; the rest keep their order', () => {
    const order = (r: number) => resolveTargets('balanced', { policy, providers: EU, random: () => r }).map((t) => t.provider);
    // Weights 1 (openai) and 3 (anthropic): [0, 0.25) → openai, [0.25, 1) → anthropic.
    expect(order(0)).toEqual(['openai', 'mistral', 'anthropic']);
    expect(order(0.2499)).toEqual(['openai', 'mistral', 'anthropic']);
    expect(order(0.25)).toEqual(['anthropic', 'openai', 'mistral']);
    expect(order(0.9999999)).toEqual(['anthropic', 'openai', 'mistral']);
  });

  it('weighted choice follows the weights over many draws', () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let anthropic = 0;
    for (let i = 0; i < 4000; i++) if (resolveTargets('balanced', { policy, providers: EU, random })[0].provider === 'anthropic') anthropic++;
    expect(anthropic / 4000).toBeGreaterThan(0.7);
    expect(anthropic / 4000).toBeLessThan(0.8);
  });

  it('a weighted target outside the cell is never drawn', () => {
    const providers = { openai: EU.openai, mistral: EU.mistral };
    for (const r of [0, 0.5, 0.99]) {
      expect(resolveTargets('balanced', { policy, providers, random: () => r }).map((t) => t.provider)).toEqual(['openai', 'mistral']);
    }
  });

  it('drops targets whose provider is not in the cell (residency allowlist)', () => {
    expect(resolveTargets('mixed', { policy, providers: EU })).toEqual([
      { provider: 'my-vllm', kind: 'openai-compatible', baseUrl: 'http://127.0.0.1:8000', model: 'llama-3.1-8b', secret: 'default' },
    ]);
  });

  it('fails clearly when no target is in the cell', () => {
    const err = noRoute(() => resolveTargets('us-only', { policy, providers: EU }));
    expect(err.message).toBe("route 'us-only' has no target among this cell's providers (openai, anthropic, mistral, my-vllm)");
  });

  it('embeddings drop Anthropic targets, and fail if nothing is left', () => {
    expect(resolveTargets('embed-any', { policy, providers: EU, api: 'embeddings' }).map((t) => t.provider)).toEqual(['openai']);
    expect(resolveTargets('embed-any', { policy, providers: EU }).map((t) => t.provider)).toEqual(['anthropic', 'openai']);
    expect(noRoute(() => resolveTargets('embed-claude', { policy, providers: EU, api: 'embeddings' })).message).toMatch(/no embeddings API/);
  });

  it('ignores prototype keys in the route table', () => {
    for (const model of ['constructor', '__proto__', 'toString']) {
      expect(noRoute(() => resolveTargets(model, { policy, providers: EU })).message).toMatch(/has no route/);
    }
  });
});

describe('explicit provider/model', () => {
  it('routes to a configured provider id, keeping the rest of the name as the model', () => {
    expect(resolveTargets('my-vllm/meta-llama/Llama-3.1-8B', { policy: none, providers: EU })).toEqual([
      { provider: 'my-vllm', kind: 'openai-compatible', baseUrl: 'http://127.0.0.1:8000', model: 'meta-llama/Llama-3.1-8B', secret: 'default' },
    ]);
    expect(resolveTargets('mistral/mistral-large-latest', { policy: none, providers: EU })[0]).toMatchObject({ provider: 'mistral', model: 'mistral-large-latest' });
  });

  it('a prefix that is not a provider of the cell is not an egress', () => {
    const err = noRoute(() => resolveTargets('bedrock-us/claude', { policy: none, providers: EU }));
    expect(err.message).toBe("model 'bedrock-us/claude' has no route: 'bedrock-us' is not a provider of this cell (openai, anthropic, mistral, my-vllm)");
    expect(noRoute(() => resolveTargets('__proto__/x', { policy: none, providers: EU })).message).toMatch(/not a provider/);
  });

  it('anthropic/... for embeddings is refused', () => {
    expect(noRoute(() => resolveTargets('anthropic/claude-haiku-4-5', { policy: none, providers: EU, api: 'embeddings' })).message).toMatch(/no embeddings API/);
  });
});

describe('inference by model name', () => {
  it.each([
    ['claude-sonnet-4-5', 'anthropic'],
    ['gpt-4o-mini', 'openai'],
    ['o1', 'openai'],
    ['o3-mini', 'openai'],
    ['o4-mini', 'openai'],
    ['chatgpt-4o-latest', 'openai'],
    ['text-embedding-3-small', 'openai'],
    ['omni-moderation-latest', 'openai'],
    ['mistral-large-latest', 'mistral'],
    ['mistral-embed', 'mistral'],
    ['open-mistral-nemo', 'mistral'],
    ['ministral-8b-latest', 'mistral'],
    ['codestral-latest', 'mistral'],
    ['pixtral-12b', 'mistral'],
    ['magistral-medium-latest', 'mistral'],
  ])('%s → %s', (model, provider) => {
    expect(resolveTargets(model, { policy: none, providers: EU })).toEqual([
      { provider, kind: provider, baseUrl: EU[provider].baseUrl, model, secret: 'default' },
    ]);
  });

  it('picks the provider of that kind, preferring the id equal to the kind', () => {
    const providers = {
      'openai-eu2': { kind: 'openai', baseUrl: 'https://b.example' },
      openai: { kind: 'openai', baseUrl: 'https://a.example' },
    } as const;
    expect(resolveTargets('gpt-4o', { policy: none, providers })[0].provider).toBe('openai');
    expect(resolveTargets('gpt-4o', { policy: none, providers: { 'azure-ish': { kind: 'openai', baseUrl: 'https://c.example' } } })[0].provider).toBe('azure-ish');
  });

  it('fails clearly when the cell has no provider of that kind', () => {
    const err = noRoute(() => resolveTargets('claude-sonnet-4-5', { policy: none, providers: { openai: EU.openai } }));
    expect(err.message).toBe("model 'claude-sonnet-4-5' needs a provider of kind 'anthropic', which this cell does not allow (openai)");
  });

  it('an unknown model has no route', () => {
    expect(noRoute(() => resolveTargets('llama-3', { policy: none, providers: EU })).message).toBe(
      "model 'llama-3' has no route; add one to the tenant's route table or use provider/model",
    );
    // Case-sensitive, like the providers themselves.
    expect(() => resolveTargets('GPT-4o', { policy: none, providers: EU })).toThrow(NoRouteError);
  });

  it('claude-* for embeddings is refused', () => {
    expect(noRoute(() => resolveTargets('claude-haiku-4-5', { policy: none, providers: EU, api: 'embeddings' })).message).toMatch(/no embeddings API/);
    expect(resolveTargets('mistral-embed', { policy: none, providers: EU, api: 'embeddings' })[0].provider).toBe('mistral');
  });
});

describe('model validation', () => {
  it.each([
    ['', 'model must be a non-empty string'],
    ['x'.repeat(257), 'model must be at most 256 characters'],
    ['gpt-4o\n', 'model must not contain control characters'],
    ['gpt\u00004o', 'model must not contain control characters'],
    ['gpt\u2028', 'model must not contain control characters'],
  ])('%j is refused without being echoed', (model, message) => {
    const err = noRoute(() => resolveTargets(model, { policy: none, providers: EU }));
    expect(err).toBeInstanceOf(InvalidModelError);
    expect(err.message).toBe(message);
  });

  it('refuses a non-string at runtime', () => {
    expect(() => resolveTargets(42 as unknown as string, { policy: none, providers: EU })).toThrow(InvalidModelError);
  });

  it('accepts 256 characters', () => {
    expect(() => resolveTargets(`gpt-${'x'.repeat(252)}`, { policy: none, providers: EU })).not.toThrow();
  });
});
