/**
 * SigV4 for the admin routes of a deployed cell (API Gateway AWS_IAM), with the standard AWS
 * credential chain. Loopback endpoints (the local gateway) are not signed.
 */
import { createHash, createHmac } from 'node:crypto';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { SignatureV4 } from '@smithy/signature-v4';

type SourceData = string | ArrayBuffer | ArrayBufferView;
const bytes = (d: SourceData): Buffer | string =>
  typeof d === 'string' ? d : ArrayBuffer.isView(d) ? Buffer.from(d.buffer, d.byteOffset, d.byteLength) : Buffer.from(d);

/** node:crypto SHA-256 / HMAC in the shape the signer wants. */
class Sha256 {
  private readonly hash;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: SourceData): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
}

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
  const signer = new SignatureV4({ service: 'execute-api', region: opts.region, credentials: defaultProvider(), sha256: Sha256 });
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
