/**
 * Models a provider kind serves out of the box, as its API names them: what GET /v1/models offers
 * a tenant without a route table or allowlist. Each has an entry in the built-in price table
 * (test/unit/router/model-list.test.ts checks it). Operators add models of their own endpoints
 * (an openai-compatible server, an Azure deployment) through the price table's provider entries.
 */
import type { ProviderKind } from './types';

export const KNOWN_MODELS: Readonly<Partial<Record<ProviderKind, readonly string[]>>> = {
  openai: [
    'gpt-5',
    'gpt-5-mini',
    'gpt-5-nano',
    'gpt-4.1',
    'gpt-4.1-mini',
    'gpt-4.1-nano',
    'gpt-4o',
    'gpt-4o-mini',
    'o3',
    'o3-mini',
    'o4-mini',
    'text-embedding-3-small',
    'text-embedding-3-large',
  ],
  anthropic: [
    'claude-opus-4-5',
    'claude-opus-4-1',
    'claude-sonnet-4-5',
    'claude-sonnet-4-0',
    'claude-haiku-4-5',
    'claude-3-7-sonnet-latest',
    'claude-3-5-haiku-latest',
  ],
  mistral: [
    'mistral-large-latest',
    'mistral-medium-latest',
    'mistral-small-latest',
    'magistral-medium-latest',
    'magistral-small-latest',
    'codestral-latest',
    'devstral-medium-latest',
    'devstral-small-latest',
    'ministral-8b-latest',
    'ministral-3b-latest',
    'open-mistral-nemo',
    'pixtral-large-latest',
    'mistral-embed',
  ],
};
