import { ProviderHttpClient } from '../../lambda/adapters/provider-http';
import type { ProviderClient } from '../../lambda/core/router/provider-port';

/**
 * A provider client with a short first-byte timeout for the providers a test makes hang, and a
 * long one for the others. With one short timeout for all, the provider that does answer had to
 * answer within it too (200-300 ms), which a loaded CI runner's pauses can exceed.
 */
export function shortFirstByteTimeoutFor(providers: readonly string[], firstByteTimeoutMs: number): ProviderClient {
  const short = new ProviderHttpClient({ firstByteTimeoutMs });
  const long = new ProviderHttpClient({ firstByteTimeoutMs: 30_000 });
  return { send: (req) => (providers.includes(req.target.provider) ? short : long).send(req) };
}
