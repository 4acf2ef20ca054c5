import { ProviderHttpClient, providerUrl } from '../../../lambda/adapters/provider-http';
import { parseClientRequest } from '../../../lambda/core/router/client-request';
import { upstreamRequest } from '../../../lambda/core/router/upstream-exchange';
import { resolveTargets } from '../../../lambda/core/routing/resolve-targets';
import type { Target } from '../../../lambda/core/routing/types';
import { DEFAULT_AZURE_API_VERSION, providerEndpointProblems } from '../../../lib/config/provider-endpoint';

const BASE = 'https://myres-swedencentral.openai.azure.com';
const azure = (model: string, apiVersion?: string): Target => ({
  provider: 'azure',
  kind: 'azure-openai',
  baseUrl: BASE,
  model,
  secret: 'default',
  ...(apiVersion ? { apiVersion } : {}),
});

describe('configuration', () => {
  test('azure-openai is a provider kind; apiVersion is checked, and only that kind may set it', () => {
    expect(providerEndpointProblems({ azure: { kind: 'azure-openai', baseUrl: BASE } }, 'cell')).toEqual([]);
    expect(providerEndpointProblems({ azure: { kind: 'azure-openai', baseUrl: BASE, apiVersion: '2025-04-01-preview' } }, 'cell')).toEqual([]);
    expect(providerEndpointProblems({ azure: { kind: 'azure-openai', baseUrl: BASE, apiVersion: 'latest' } }, 'cell').join()).toMatch(/apiVersion must look like 2024-10-21/);
    expect(providerEndpointProblems({ azure: { kind: 'azure-openai', baseUrl: BASE, apiVersion: '2024-10-21&x=1' } }, 'cell')).toHaveLength(1);
    expect(providerEndpointProblems({ openai: { kind: 'openai', baseUrl: 'https://api.openai.com', apiVersion: '2024-10-21' } }, 'cell').join()).toMatch(
      /only kind 'azure-openai' uses/,
    );
    expect(providerEndpointProblems({ azure: { kind: 'azure-openai', baseUrl: `${BASE}?api-version=2024-10-21` } }, 'cell').join()).toMatch(/query/);
  });

  test('route targets carry the provider’s api-version, the GA default when it names none', () => {
    const providers = {
      azure: { kind: 'azure-openai', baseUrl: BASE },
      'azure-next': { kind: 'azure-openai', baseUrl: BASE, apiVersion: '2025-04-01-preview' },
    } as const;
    expect(resolveTargets('azure/chat', { policy: {}, providers })[0]).toMatchObject({ kind: 'azure-openai', model: 'chat', apiVersion: DEFAULT_AZURE_API_VERSION });
    const routed = resolveTargets('fast', { policy: { routes: { fast: [{ provider: 'azure-next', model: 'gpt4o-eu' }] } }, providers });
    expect(routed[0]).toMatchObject({ provider: 'azure-next', model: 'gpt4o-eu', apiVersion: '2025-04-01-preview' });
    // Bare OpenAI model names never go to Azure by inference: Azure is reached by deployment.
    expect(() => resolveTargets('gpt-4o', { policy: {}, providers })).toThrow(/kind 'openai'/);
    for (const bad of ['azure/..', 'azure/../x', 'azure/a?b', 'azure/a#b', 'azure/.hidden', `azure/${'x'.repeat(65)}`]) {
      expect(() => resolveTargets(bad, { policy: {}, providers })).toThrow(/Azure OpenAI resource/);
    }
  });
});

describe('provider adapter', () => {
  test('deployment URLs with the api-version; models and messages paths', () => {
    expect(providerUrl(azure('chat-eu'), '/v1/chat/completions')).toBe(`${BASE}/openai/deployments/chat-eu/chat/completions?api-version=2024-10-21`);
    expect(providerUrl(azure('embed.v3', '2025-04-01-preview'), '/v1/embeddings')).toBe(`${BASE}/openai/deployments/embed.v3/embeddings?api-version=2025-04-01-preview`);
    expect(providerUrl({ ...azure('x'), baseUrl: `${BASE}/` }, '/v1/models')).toBe(`${BASE}/openai/models?api-version=2024-10-21`);
    expect(() => providerUrl(azure('chat-eu'), '/v1/messages')).toThrow(/no Messages API/);
    for (const bad of ['..', '../models', 'a/b', 'a?b', '', '%2e%2e']) expect(() => providerUrl(azure(bad), '/v1/chat/completions')).toThrow(/deployment name/);
    expect(() => providerUrl(azure('chat', '1&evil=1'), '/v1/chat/completions')).toThrow(/api version/i);
  });

  test('the key goes in api-key, never in Authorization; api-key cannot be set as an extra header', async () => {
    const calls: { url: string; headers: Record<string, string> }[] = [];
    const fetchStub = (async (url: string, init: RequestInit) => {
      calls.push({ url, headers: init.headers as Record<string, string> });
      return new Response('{}', { status: 200 });
    }) as unknown as typeof fetch;
    const client = new ProviderHttpClient({ fetch: fetchStub });
    const signal = new AbortController().signal;
    await client.send({ target: azure('chat-eu'), path: '/v1/chat/completions', body: { stream: true }, apiKey: 'k'.repeat(32), signal });
    expect(calls[0].url).toBe(`${BASE}/openai/deployments/chat-eu/chat/completions?api-version=2024-10-21`);
    expect(calls[0].headers).toMatchObject({ 'api-key': 'k'.repeat(32), accept: 'text/event-stream', 'content-type': 'application/json' });
    expect(calls[0].headers.authorization).toBeUndefined();
    await expect(
      client.send({ target: { ...azure('chat-eu'), kind: 'openai' }, path: '/v1/chat/completions', apiKey: 'k', signal, extraHeaders: { 'api-key': 'other' } }),
    ).rejects.toThrow(/extra header 'api-key' is not allowed/);
  });
});

describe('request shape per api-version', () => {
  const req = (body: Record<string, unknown>) =>
    parseClientRequest('chat', { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }, 1 << 20);

  test('current api-versions take max_completion_tokens and stream_options; older ones max_tokens only', () => {
    const client = { ...req({ model: 'x', stream: true, messages: [{ role: 'user', content: 'hi' }] }), maxTokens: 99 };
    expect(upstreamRequest(client, azure('chat-eu')).body).toMatchObject({ model: 'chat-eu', max_completion_tokens: 99, stream_options: { include_usage: true } });
    const old = upstreamRequest(client, azure('chat-eu', '2024-06-01')).body as Record<string, unknown>;
    expect([old.max_tokens, old.max_completion_tokens, old.stream_options]).toEqual([99, undefined, undefined]);
    expect(upstreamRequest(client, azure('chat-eu')).path).toBe('/v1/chat/completions');
  });
});
