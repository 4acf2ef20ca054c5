/**
 * The Amazon Bedrock runtime wire, for the provider HTTP adapter: Converse URLs (model id in the
 * path), SigV4 with the router's role (@smithy/signature-v4, the SDK's signer), and ConverseStream's
 * binary event stream (the SDK's EventStreamCodec decodes each message and checks both CRCs)
 * re-framed as SSE events named after the event type, so the core reads every provider's stream
 * the same way. Both are bundled with the SDK commands (the signer is the one the SDK clients use).
 */
import { EventStreamCodec } from '@smithy/core/event-streams';
import { SignatureV4 } from '@smithy/signature-v4';
import { NodeSha256 } from './node-sha256';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { bedrockEndpointProblem, bedrockModelProblem } from '../core/cell-config';
import { chunksOf, type ProviderBody } from '../core/router/provider-port';

/** What the adapter needs to call Bedrock: the cell's region and, for `auth: 'iam'`, credentials. */
export interface BedrockWireOptions {
  /** The cell's region: the only Bedrock region the router calls (and the SigV4 scope). */
  readonly region: string;
  /** The router role's credentials (`auth: 'iam'`). Without them, IAM-authenticated targets fail. */
  readonly credentials?: AwsCredentialIdentityProvider;
}

/** `/model/{modelId}/converse[-stream]`, once the endpoint is known to be the cell region's. */
export function bedrockPath(target: { provider: string; baseUrl: string; model?: string }, path: string, region: string | undefined): string {
  if (path !== '/converse' && path !== '/converse-stream') throw new Error(`provider '${target.provider}': Amazon Bedrock is called through Converse only`);
  if (!region) throw new Error(`provider '${target.provider}': no cell region configured for Amazon Bedrock`);
  const endpointProblem = bedrockEndpointProblem(target.baseUrl, region);
  if (endpointProblem) throw new Error(`provider '${target.provider}': ${endpointProblem}`);
  const modelProblem = bedrockModelProblem(target.model ?? '');
  if (modelProblem) throw new Error(`provider '${target.provider}': ${modelProblem}`);
  return `/model/${encodeURIComponent(target.model ?? '')}${path}`;
}

/** One signer per adapter: service `bedrock`, the cell's region, the role's credentials. */
export function bedrockSigner(opts: BedrockWireOptions): SignatureV4 | undefined {
  if (!opts.credentials) return undefined;
  return new SignatureV4({ service: 'bedrock', region: opts.region, credentials: opts.credentials, sha256: NodeSha256 });
}

/** The request's headers with SigV4 added (host, x-amz-date, Authorization, session token). */
export async function signBedrock(signer: SignatureV4, url: URL, headers: Record<string, string>, body: string): Promise<Record<string, string>> {
  const signed = await signer.sign({
    method: 'POST',
    protocol: url.protocol,
    hostname: url.hostname,
    port: url.port ? Number(url.port) : undefined,
    path: url.pathname,
    query: {},
    headers: { ...headers, host: url.host },
    body,
  });
  // The HTTP client sets Host itself, from the same URL (a signed header, so it must match: it does).
  const { host: _host, ...rest } = signed.headers as Record<string, string>;
  return rest;
}

const EVENT_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
/** A ConverseStream message is one event (a token, a tool-input fragment); far below this. */
export const MAX_EVENT_MESSAGE_BYTES = 1024 * 1024;
const codec = new EventStreamCodec(
  (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8'),
  (s) => Buffer.from(s, 'utf8'),
);

/**
 * application/vnd.amazon.eventstream → text/event-stream: each event or exception message
 * becomes `event: <:event-type or :exception-type>` with its JSON payload as data. A corrupt
 * message (bad length or CRC) errors the stream, which the router reports as a broken stream.
 * Cancelling the result cancels the upstream body.
 */
export function eventStreamToSse(body: ProviderBody | ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  async function* sse(): AsyncGenerator<Uint8Array> {
    // Leaving the loop (done, a corrupt message, a cancel) closes the upstream body.
    for await (const raw of messages(chunksOf(body))) {
      const message = codec.decode(raw);
      const kind = message.headers[':message-type']?.value;
      const name = kind === 'exception' ? message.headers[':exception-type']?.value : kind === 'event' ? message.headers[':event-type']?.value : message.headers[':error-code']?.value;
      const type = typeof name === 'string' && EVENT_NAME.test(name) ? name : 'unknownException';
      const text = Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength).toString('utf8');
      // One SSE data line per payload line: a payload can never end the event early.
      yield encoder.encode(`event: ${kind === 'event' ? type : type.endsWith('Exception') ? type : `${type}Exception`}\ndata: ${text.split(/\r\n|\r|\n/).join('\ndata: ')}\n\n`);
    }
  }
  const it = sse();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await it.next();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (err) {
        controller.error(err);
      }
    },
    async cancel() {
      await it.return(undefined);
      // Not started yet: nothing holds the body, so it is cancelled here (a locked one refuses).
      await body.cancel().catch(() => undefined);
    },
  });
}

/**
 * Whole event-stream messages from a byte stream: each starts with its total length (4 bytes,
 * big-endian), checked against the 16-byte minimum and MAX_EVENT_MESSAGE_BYTES before anything is
 * buffered for it. The codec then checks the prelude and message CRCs.
 */
export async function* messages(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let buffered = Buffer.alloc(0);
  for await (const chunk of chunks) {
    buffered = buffered.length === 0 ? Buffer.from(chunk) : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 4) {
      const total = buffered.readUInt32BE(0);
      if (total < 16 || total > MAX_EVENT_MESSAGE_BYTES) throw new Error(`event-stream message length ${total} is out of bounds`);
      if (buffered.length < total) break;
      yield buffered.subarray(0, total);
      buffered = buffered.subarray(total);
    }
  }
  if (buffered.length > 0) throw new Error('event stream ended inside a message');
}
