import { DeploymentConfig } from '../lib';

/**
 * The default deployment: two cells. Each cell may call only the provider endpoints listed for
 * it. The EU cell is strict: prompts stay in the EU (OpenAI's European data-residency endpoint,
 * Mistral's EU-hosted API); Anthropic's API has no EU processing commitment, so it is not listed
 * there. The US cell is standard (README: where providers process prompts).
 */
export const DEFAULT_CONFIG: DeploymentConfig = {
  stackPrefix: 'SovereignRouter',
  cells: [
    {
      region: 'eu-central-1',
      residency: 'strict',
      providers: {
        openai: { kind: 'openai', baseUrl: 'https://eu.api.openai.com' },
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
