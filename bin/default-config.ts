import { DeploymentConfig } from '../lib';

/**
 * The default deployment: two cells. Each cell may call only the provider endpoints listed for
 * it; the EU cell uses OpenAI's European data-residency endpoint.
 */
export const DEFAULT_CONFIG: DeploymentConfig = {
  stackPrefix: 'SovereignRouter',
  cells: [
    {
      region: 'eu-central-1',
      providers: {
        openai: { kind: 'openai', baseUrl: 'https://eu.api.openai.com' },
        anthropic: { kind: 'anthropic', baseUrl: 'https://api.anthropic.com' },
        mistral: { kind: 'mistral', baseUrl: 'https://api.mistral.ai' },
      },
    },
    {
      region: 'us-east-1',
      providers: {
        openai: { kind: 'openai', baseUrl: 'https://api.openai.com' },
        anthropic: { kind: 'anthropic', baseUrl: 'https://api.anthropic.com' },
        mistral: { kind: 'mistral', baseUrl: 'https://api.mistral.ai' },
      },
    },
  ],
};
