/**
 * Stands in for `@aws-sdk/credential-provider-node` in the function bundles (an esbuild alias,
 * lib/private/bundle-options.ts). Lambda hands every function its role's credentials in
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, so the SDK's default chain
 * (SSO, ini files, STS web identity, container and instance metadata) is never needed there:
 * leaving it out keeps about 100 KiB of SDK code out of each bundle and about 9 ms out of its init.
 * Without those variables the first AWS call fails with the SDK's CredentialsProviderError.
 */
import { fromEnv } from '@aws-sdk/credential-provider-env';

export const defaultProvider = (init?: Parameters<typeof fromEnv>[0]) => fromEnv(init);
