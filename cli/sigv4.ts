/**
 * SigV4 for the admin routes of a deployed cell (API Gateway AWS_IAM), with the standard AWS
 * credential chain. Loopback endpoints (the local gateway) are not signed.
 */
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { NodeSha256 } from '../lambda/adapters/node-sha256';

/** The region of an execute-api host, e.g. abc123.execute-api.eu-central-1.amazonaws.com. */
export function regionOfApiHost(host: string): string | undefined {
  return /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$/.exec(host)?.[1];
}

export async function signedHeaders(opts: {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body?: string;
  region: string;
}): Promise<Record<string, string>> {
  const signer = new SignatureV4({ service: 'execute-api', region: opts.region, credentials: defaultProvider(), sha256: NodeSha256 });
  const query: Record<string, string> = {};
  opts.url.searchParams.forEach((v, k) => (query[k] = v));
  const signed = await signer.sign({
    method: opts.method,
    protocol: opts.url.protocol,
    hostname: opts.url.hostname,
    port: opts.url.port ? Number(opts.url.port) : undefined,
    path: opts.url.pathname,
    query,
    headers: { ...opts.headers, host: opts.url.host },
    body: opts.body,
  });
  return signed.headers as Record<string, string>;
}
