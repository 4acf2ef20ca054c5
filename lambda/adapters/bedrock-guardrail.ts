/**
 * Amazon Bedrock Guardrails over HTTP: ApplyGuardrail (`POST /guardrail/{id}/version/{v}/apply`)
 * on the cell region's bedrock-runtime endpoint, signed with SigV4 by the router's role (the same
 * signer and endpoint check as Bedrock provider targets, bedrock-wire.ts). Only the answer's
 * `action` is read; the guardrail's output text and assessments are dropped unread.
 */
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { bedrockEndpointProblem } from '../core/cell-config';
import { GuardrailServiceError, type GuardrailService } from '../core/guardrails/guardrail-service';
import type { BedrockGuardrailRef } from '../core/guardrails/policy';
import { bedrockSigner, signBedrock } from './bedrock-wire';

export interface BedrockGuardrailClientOptions {
  /** The cell's region: the SigV4 scope and the only endpoint region allowed. */
  readonly region: string;
  /** The router role's credentials. */
  readonly credentials: AwsCredentialIdentityProvider;
  /** @default `https://bedrock-runtime.<region>.amazonaws.com` (loopback allowed, for tests) */
  readonly endpoint?: string;
  /** @default 5000 */
  readonly timeoutMs?: number;
  /** @default globalThis.fetch */
  readonly fetch?: typeof fetch;
}

const MAX_ANSWER_BYTES = 1024 * 1024;

export class BedrockGuardrailClient implements GuardrailService {
  private readonly endpoint: string;
  private readonly signer;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;

  constructor(opts: BedrockGuardrailClientOptions) {
    const endpoint = (opts.endpoint ?? `https://bedrock-runtime.${opts.region}.amazonaws.com`).replace(/\/$/, '');
    const problem = bedrockEndpointProblem(endpoint, opts.region);
    if (problem) throw new Error(`Amazon Bedrock Guardrails: ${problem}`);
    this.endpoint = endpoint;
    this.signer = bedrockSigner({ region: opts.region, credentials: opts.credentials })!;
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.fetch = opts.fetch ?? globalThis.fetch;
  }

  async apply(ref: BedrockGuardrailRef, texts: readonly string[], signal?: AbortSignal): Promise<{ intervened: boolean }> {
    // The policy schema already allows only these shapes; checked again since they go in a path.
    if (!/^[a-z0-9]{1,64}$/.test(ref.guardrailId) || !/^(DRAFT|[1-9][0-9]{0,7})$/.test(ref.guardrailVersion)) {
      throw new GuardrailServiceError('rejected', 'invalid guardrail id or version');
    }
    const url = new URL(`${this.endpoint}/guardrail/${ref.guardrailId}/version/${ref.guardrailVersion}/apply`);
    const body = JSON.stringify({ source: 'INPUT', content: texts.map((text) => ({ text: { text } })) });
    const headers = await signBedrock(this.signer, url, { 'content-type': 'application/json', accept: 'application/json' }, body);
    const timeout = AbortSignal.timeout(this.timeoutMs);
    let res: Response;
    try {
      res = await this.fetch(url, { method: 'POST', headers, body, redirect: 'manual', signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
    } catch {
      throw new GuardrailServiceError('unavailable', timeout.aborted ? `no answer within ${this.timeoutMs} ms` : 'connection failed');
    }
    const text = await readCapped(res).catch(() => undefined);
    if (text === undefined) throw new GuardrailServiceError('unavailable', 'the answer broke off or was too large');
    if (res.status === 429 || res.status >= 500) throw new GuardrailServiceError('unavailable', `HTTP ${res.status}${awsErrorType(res)}`);
    if (res.status !== 200) throw new GuardrailServiceError('rejected', `HTTP ${res.status}${awsErrorType(res)}`);
    let action: unknown;
    try {
      action = (JSON.parse(text) as { action?: unknown }).action;
    } catch {
      action = undefined;
    }
    if (action === 'GUARDRAIL_INTERVENED') return { intervened: true };
    if (action === 'NONE') return { intervened: false };
    throw new GuardrailServiceError('rejected', 'the answer carries no known action');
  }
}

/** The AWS error type (x-amzn-ErrorType, up to ':'), if it is a plain name: never a message. */
function awsErrorType(res: Response): string {
  const t = (res.headers.get('x-amzn-errortype') ?? '').split(':')[0];
  return /^[A-Za-z]{1,64}$/.test(t) ? ` ${t}` : '';
}

async function readCapped(res: Response): Promise<string> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > MAX_ANSWER_BYTES) throw new Error('too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
