/**
 * A fake Amazon Bedrock runtime on 127.0.0.1: `POST /model/{modelId}/converse` and
 * `/converse-stream` (AWS event-stream framing, encoded here by hand with CRC32 so the adapter's
 * decoder is checked against an independent encoder). Every request must carry either the
 * accepted Bedrock API key as a bearer token, or a SigV4 signature that this server verifies
 * itself (node:crypto, independent of the signer under test) with the known fake credentials:
 * algorithm AWS4-HMAC-SHA256, credential scope `<date>/<region>/bedrock/aws4_request` for the
 * configured region, a fresh x-amz-date, host and x-amz-date signed, the signature recomputed.
 * The Converse body is checked strictly (unknown fields are a ValidationException, as at AWS).
 * `POST /guardrail/{id}/version/{version}/apply` (ApplyGuardrail) needs SigV4 (no API key), knows
 * the guardrails in `guardrails`, checks its body strictly and intervenes when a text block
 * contains one of `guardrailTriggers` (answering with its own masked output, as AWS does).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32 } from 'node:zlib';

/** Models the fake serves (foundation-model ids as Converse takes them). */
export const FAKE_BEDROCK_MODELS = ['anthropic.claude-3-5-haiku-20241022-v1:0', 'mistral.mistral-large-2407-v1:0', 'amazon.nova-lite-v1:0'] as const;

/** The router role's fake credentials; the fake verifies signatures with them. */
export const FAKE_AWS_CREDENTIALS = {
  accessKeyId: 'AKIAFAKEROUTERROLE01',
  secretAccessKey: 'fake/secret/Key+for+sigv4+tests+0123456789',
  sessionToken: 'FakeSessionToken//routerRole==',
} as const;

export type FakeBedrockBehavior =
  /** Answer with this status and AWS error type (x-amzn-ErrorType and `{ message }`). */
  | { kind: 'status'; status: number; type: string }
  /** Answer with one tool call. */
  | { kind: 'tool-call'; name: string; input: Record<string, unknown> }
  /** Streams: send `afterEvents` events, then an exception message (e.g. throttlingException). */
  | { kind: 'stream-exception'; afterEvents: number; type: string; message?: string }
  /** Streams: send `afterEvents` events, then destroy the socket. */
  | { kind: 'break-stream'; afterEvents: number }
  /** Streams: send every event but leave out the final `metadata` (usage) event. */
  | { kind: 'no-metadata' }
  /** Streams: corrupt one byte of the message after `afterEvents` events (the CRC must catch it). */
  | { kind: 'corrupt'; afterEvents: number };

export interface FakeBedrockRequest {
  path: string;
  modelId: string;
  operation: 'converse' | 'converse-stream' | 'apply-guardrail';
  /** ApplyGuardrail: the guardrail and version in the path. */
  guardrail?: { id: string; version: string };
  headers: http.IncomingHttpHeaders;
  body: unknown;
  auth: 'bearer' | 'sigv4' | 'none';
  /** The bearer token presented (for canary checks). */
  bearer?: string;
  /** The SigV4 credential scope and signed headers, when signed. */
  sigv4?: { accessKeyId: string; date: string; region: string; service: string; signedHeaders: string[] };
}

export interface FakeBedrock {
  readonly baseUrl: string;
  readonly requests: FakeBedrockRequest[];
  /** The region whose signatures are accepted (credential scope). */
  region: string;
  /** The Bedrock API key accepted as a bearer token. */
  key: string;
  /** Guardrails ApplyGuardrail knows, as `id:version`. */
  readonly guardrails: Set<string>;
  /** Words whose presence in any text block makes a guardrail intervene. */
  guardrailTriggers: string[];
  script(behaviors: FakeBedrockBehavior[]): void;
  reset(): void;
  close(): Promise<void>;
}

const ALLOWED_TOP_LEVEL = new Set(['messages', 'system', 'inferenceConfig', 'toolConfig', 'additionalModelRequestFields', 'guardrailConfig', 'additionalModelResponseFieldPaths', 'promptVariables', 'requestMetadata', 'performanceConfig']);
const BLOCK_KEYS = new Set(['text', 'image', 'document', 'video', 'toolUse', 'toolResult', 'guardContent', 'cachePoint', 'reasoningContent']);

export async function startFakeBedrock(opts: { region: string; key: string }): Promise<FakeBedrock> {
  const requests: FakeBedrockRequest[] = [];
  let queue: FakeBedrockBehavior[] = [];
  let counter = 0;
  const state = { region: opts.region, key: opts.key, triggers: ['forbidden-topic'] };
  const guardrails = new Set<string>();

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        handle(req, res, Buffer.concat(chunks));
      } catch (err) {
        if (!res.headersSent) awsError(res, 500, 'InternalServerException', `fake failure: ${String(err)}`);
        else res.destroy();
      }
    });
  });

  function handle(req: http.IncomingMessage, res: http.ServerResponse, raw: Buffer): void {
    const path = req.url ?? '/';
    const g = /^\/guardrail\/([^/?]+)\/version\/([^/?]+)\/apply$/.exec(path);
    if (g) return applyGuardrail(req, res, raw, path, decodeURIComponent(g[1]), decodeURIComponent(g[2]));
    const m = /^\/model\/([^/?]+)\/(converse|converse-stream)$/.exec(path);
    let body: unknown;
    try {
      body = raw.length ? JSON.parse(raw.toString('utf8')) : undefined;
    } catch {
      body = raw.toString('utf8');
    }
    const record: FakeBedrockRequest = { path, modelId: m ? decodeURIComponent(m[1]) : '', operation: (m?.[2] ?? 'converse') as FakeBedrockRequest['operation'], headers: req.headers, body, auth: 'none' };
    requests.push(record);
    if (req.method !== 'POST' || !m) return awsError(res, 404, 'UnknownOperationException', `Unknown operation ${req.method} ${path}`);

    const authz = req.headers.authorization ?? '';
    if (authz.startsWith('Bearer ')) {
      record.auth = 'bearer';
      record.bearer = authz.slice('Bearer '.length);
      if (!safeEqual(record.bearer, state.key)) return awsError(res, 403, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
    } else if (authz.startsWith('AWS4-HMAC-SHA256 ')) {
      record.auth = 'sigv4';
      const problem = verifySigV4(req, raw, state.region, record);
      if (problem) return awsError(res, 403, 'InvalidSignatureException', problem);
    } else {
      return awsError(res, 403, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
    }

    if (!(FAKE_BEDROCK_MODELS as readonly string[]).includes(record.modelId)) {
      return awsError(res, 400, 'ValidationException', 'The provided model identifier is invalid.');
    }
    const invalid = converseProblem(body);
    if (invalid) return awsError(res, 400, 'ValidationException', invalid);

    const behavior = queue.shift();
    if (behavior?.kind === 'status') return awsError(res, behavior.status, behavior.type, `Scripted ${behavior.type}`);
    const answer = buildAnswer(body as Record<string, unknown>, behavior);
    if (record.operation === 'converse') return converse(res, answer);
    return converseStream(res, answer, behavior);
  }

  function applyGuardrail(req: http.IncomingMessage, res: http.ServerResponse, raw: Buffer, path: string, id: string, version: string): void {
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      body = raw.toString('utf8');
    }
    const record: FakeBedrockRequest = { path, modelId: '', operation: 'apply-guardrail', guardrail: { id, version }, headers: req.headers, body, auth: 'none' };
    requests.push(record);
    if (req.method !== 'POST') return awsError(res, 404, 'UnknownOperationException', `Unknown operation ${req.method} ${path}`);
    if (!(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 ')) return awsError(res, 403, 'AccessDeniedException', 'ApplyGuardrail needs a SigV4-signed request');
    record.auth = 'sigv4';
    const problem = verifySigV4(req, raw, state.region, record);
    if (problem) return awsError(res, 403, 'InvalidSignatureException', problem);
    const behavior = queue.shift();
    if (behavior?.kind === 'status') return awsError(res, behavior.status, behavior.type, `Scripted ${behavior.type}`);
    if (!guardrails.has(`${id}:${version}`)) return awsError(res, 404, 'ResourceNotFoundException', 'The guardrail was not found.');
    const b = body as { source?: unknown; content?: unknown };
    const valid =
      typeof b === 'object' && b !== null && Object.keys(b).every((k) => k === 'source' || k === 'content' || k === 'outputScope') &&
      (b.source === 'INPUT' || b.source === 'OUTPUT') && Array.isArray(b.content) && b.content.length > 0 &&
      b.content.every((c: unknown) => typeof c === 'object' && c !== null && Object.keys(c).length === 1 && typeof (c as { text?: { text?: unknown } }).text?.text === 'string');
    if (!valid) return awsError(res, 400, 'ValidationException', 'Invalid ApplyGuardrail request');
    const texts = (b.content as Array<{ text: { text: string } }>).map((c) => c.text.text);
    const hit = texts.some((t) => state.triggers.some((w) => t.toLowerCase().includes(w.toLowerCase())));
    json(res, 200, {
      usage: { topicPolicyUnits: texts.length, contentPolicyUnits: texts.length, wordPolicyUnits: 0, sensitiveInformationPolicyUnits: 0, sensitiveInformationPolicyFreeUnits: 0, contextualGroundingPolicyUnits: 0 },
      action: hit ? 'GUARDRAIL_INTERVENED' : 'NONE',
      ...(hit ? { actionReason: 'Guardrail blocked.' } : {}),
      // At AWS the output is the guardrail's blocked message (or masked text): the router must not pass it on.
      outputs: hit ? [{ text: 'FAKE-GUARDRAIL-OUTPUT: Sorry, the model cannot answer this question.' }] : [],
      assessments: hit ? [{ topicPolicy: { topics: [{ name: 'fake-topic', type: 'DENY', action: 'BLOCKED', detected: true }] } }] : [],
    });
  }

  function buildAnswer(body: Record<string, unknown>, behavior: FakeBedrockBehavior | undefined) {
    const messages = body.messages as Array<{ role: string; content: Array<Record<string, unknown>> }>;
    const inputTokens = Math.max(1, Math.ceil((JSON.stringify(messages) + JSON.stringify(body.system ?? '')).length / 4));
    const inference = (body.inferenceConfig ?? {}) as { maxTokens?: number };
    counter += 1;
    if (behavior?.kind === 'tool-call') {
      const input = JSON.stringify(behavior.input);
      return { text: '', tool: { id: `tooluse_fake${String(counter).padStart(6, '0')}`, name: behavior.name, input }, stopReason: 'tool_use', inputTokens, outputTokens: Math.ceil(input.length / 4) };
    }
    const lastUser = [...messages].reverse().find((msg) => msg.role === 'user');
    const said = (lastUser?.content ?? [])
      .map((b) => (typeof b.text === 'string' ? b.text : b.toolResult ? ((b.toolResult as { content: Array<{ text?: string }> }).content ?? []).map((c) => c.text ?? '').join(' ') : ''))
      .filter((t) => t)
      .join(' ');
    let words = `Echo: ${said}`.trim().split(' ');
    let stopReason = 'end_turn';
    if (inference.maxTokens !== undefined && words.length > inference.maxTokens) {
      words = words.slice(0, inference.maxTokens);
      stopReason = 'max_tokens';
    }
    return { text: words.join(' '), tool: undefined, stopReason, inputTokens, outputTokens: words.length };
  }

  function converse(res: http.ServerResponse, a: ReturnType<typeof buildAnswer>): void {
    const content = a.tool ? [{ toolUse: { toolUseId: a.tool.id, name: a.tool.name, input: JSON.parse(a.tool.input) } }] : [{ text: a.text }];
    json(res, 200, {
      output: { message: { role: 'assistant', content } },
      stopReason: a.stopReason,
      usage: { inputTokens: a.inputTokens, outputTokens: a.outputTokens, totalTokens: a.inputTokens + a.outputTokens },
      metrics: { latencyMs: 12 },
    });
  }

  function converseStream(res: http.ServerResponse, a: ReturnType<typeof buildAnswer>, behavior: FakeBedrockBehavior | undefined): void {
    // Real ConverseStream payloads carry a `p` padding field; clients must ignore it.
    const events: Array<[string, Record<string, unknown>]> = [['messageStart', { role: 'assistant', p: 'abcdefgh' }]];
    if (a.tool) {
      events.push(['contentBlockStart', { contentBlockIndex: 0, start: { toolUse: { toolUseId: a.tool.id, name: a.tool.name } }, p: 'abc' }]);
      for (let i = 0; i < a.tool.input.length; i += 7) events.push(['contentBlockDelta', { contentBlockIndex: 0, delta: { toolUse: { input: a.tool.input.slice(i, i + 7) } }, p: 'ab' }]);
    } else {
      for (const piece of a.text.match(/\s*\S+/g) ?? []) events.push(['contentBlockDelta', { contentBlockIndex: 0, delta: { text: piece }, p: 'abcd' }]);
    }
    events.push(['contentBlockStop', { contentBlockIndex: 0, p: 'a' }]);
    events.push(['messageStop', { stopReason: a.stopReason, p: 'abcdef' }]);
    if (behavior?.kind !== 'no-metadata') {
      events.push(['metadata', { usage: { inputTokens: a.inputTokens, outputTokens: a.outputTokens, totalTokens: a.inputTokens + a.outputTokens }, metrics: { latencyMs: 15 }, p: 'abc' }]);
    }
    res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': `fake-${counter}` });
    res.flushHeaders();
    let i = 0;
    const next = () => {
      if (res.destroyed) return;
      if (behavior?.kind === 'stream-exception' && i === behavior.afterEvents) {
        res.end(frame({ ':message-type': 'exception', ':exception-type': behavior.type, ':content-type': 'application/json' }, { message: behavior.message ?? `Scripted ${behavior.type}` }));
        return;
      }
      if (behavior?.kind === 'break-stream' && i === behavior.afterEvents) {
        res.write('', () => res.socket?.destroy());
        return;
      }
      if (i >= events.length) return void res.end();
      const [type, payload] = events[i];
      const bytes = frame({ ':message-type': 'event', ':event-type': type, ':content-type': 'application/json' }, payload);
      if (behavior?.kind === 'corrupt' && i === behavior.afterEvents) bytes[bytes.length - 6] ^= 0xff;
      i += 1;
      // Split each message across two writes so the decoder must reassemble frames.
      const cut = Math.floor(bytes.length / 2);
      res.write(bytes.subarray(0, cut));
      res.write(bytes.subarray(cut), () => setImmediate(next));
    };
    next();
  }

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    baseUrl,
    requests,
    get region() {
      return state.region;
    },
    set region(r: string) {
      state.region = r;
    },
    get key() {
      return state.key;
    },
    set key(k: string) {
      state.key = k;
    },
    guardrails,
    get guardrailTriggers() {
      return state.triggers;
    },
    set guardrailTriggers(t: string[]) {
      state.triggers = t;
    },
    script(b) {
      queue.push(...b);
    },
    reset() {
      requests.length = 0;
      queue = [];
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** One AWS event-stream message: prelude (lengths + CRC), string headers, JSON payload, CRC. */
export function frame(headers: Record<string, string>, payload: unknown): Buffer {
  const headerBytes = Buffer.concat(
    Object.entries(headers).map(([name, value]) => {
      const n = Buffer.from(name, 'utf8');
      const v = Buffer.from(value, 'utf8');
      const h = Buffer.alloc(1 + n.length + 1 + 2 + v.length);
      h.writeUInt8(n.length, 0);
      n.copy(h, 1);
      h.writeUInt8(7, 1 + n.length); // type 7: string
      h.writeUInt16BE(v.length, 2 + n.length);
      v.copy(h, 4 + n.length);
      return h;
    }),
  );
  const body = Buffer.from(JSON.stringify(payload), 'utf8');
  const total = 12 + headerBytes.length + body.length + 4;
  const out = Buffer.alloc(total);
  out.writeUInt32BE(total, 0);
  out.writeUInt32BE(headerBytes.length, 4);
  out.writeUInt32BE(crc32(out.subarray(0, 8)), 8);
  headerBytes.copy(out, 12);
  body.copy(out, 12 + headerBytes.length);
  out.writeUInt32BE(crc32(out.subarray(0, total - 4)), total - 4);
  return out;
}

function awsError(res: http.ServerResponse, status: number, type: string, message: string): void {
  json(res, status, { message }, { 'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/` });
}

function json(res: http.ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(payload);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The Converse body as Bedrock validates it: known top-level fields, well-formed turns and blocks. */
function converseProblem(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'The request body must be a JSON object.';
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!ALLOWED_TOP_LEVEL.has(k)) return `Malformed input request: extraneous key [${k}] is not permitted`;
  if (!Array.isArray(b.messages) || b.messages.length === 0) return 'A conversation must start with a user message.';
  const first = b.messages[0] as { role?: unknown };
  if (first?.role !== 'user') return 'A conversation must start with a user message. Try again with a conversation that starts with a user message.';
  for (const [i, msg] of (b.messages as unknown[]).entries()) {
    const mm = msg as { role?: unknown; content?: unknown };
    if (mm.role !== 'user' && mm.role !== 'assistant') return `messages.${i}.role is invalid`;
    if (!Array.isArray(mm.content) || mm.content.length === 0) return `messages.${i}.content must be a non-empty array`;
    for (const block of mm.content as unknown[]) {
      const keys = Object.keys((block ?? {}) as object);
      if (keys.length !== 1 || !BLOCK_KEYS.has(keys[0])) return `messages.${i}.content has a block with keys [${keys.join(',')}]`;
    }
    const toolsUsed = (mm.content as Array<Record<string, unknown>>).some((c) => c.toolUse || c.toolResult);
    if (toolsUsed && !b.toolConfig) return 'The toolConfig field must be defined when using toolUse and toolResult content blocks.';
  }
  if (b.system !== undefined && (!Array.isArray(b.system) || b.system.some((s) => typeof (s as { text?: unknown })?.text !== 'string'))) return 'system must be an array of text blocks';
  const ic = b.inferenceConfig as Record<string, unknown> | undefined;
  if (ic) for (const k of Object.keys(ic)) if (!['maxTokens', 'temperature', 'topP', 'stopSequences'].includes(k)) return `inferenceConfig: extraneous key [${k}]`;
  return undefined;
}

/** Verifies AWS Signature Version 4 from first principles (the signer under test is not used). */
function verifySigV4(req: http.IncomingMessage, body: Buffer, region: string, record: FakeBedrockRequest): string | undefined {
  const m = /^AWS4-HMAC-SHA256 Credential=([A-Z0-9]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(req.headers.authorization ?? '');
  if (!m) return 'Authorization header is not a well-formed SigV4 header';
  const [, accessKeyId, date, scopeRegion, service, signedHeaderList, signature] = m;
  const signedHeaders = signedHeaderList.split(';');
  record.sigv4 = { accessKeyId, date, region: scopeRegion, service, signedHeaders };
  if (accessKeyId !== FAKE_AWS_CREDENTIALS.accessKeyId) return 'The security token included in the request is invalid.';
  if (scopeRegion !== region) return `Credential should be scoped to a valid region, not '${scopeRegion}'.`;
  if (service !== 'bedrock') return `Credential should be scoped to correct service: 'bedrock'.`;
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  if (!/^\d{8}T\d{6}Z$/.test(amzDate) || !amzDate.startsWith(date)) return 'x-amz-date is missing or does not match the credential scope date';
  const at = Date.UTC(+amzDate.slice(0, 4), +amzDate.slice(4, 6) - 1, +amzDate.slice(6, 8), +amzDate.slice(9, 11), +amzDate.slice(11, 13), +amzDate.slice(13, 15));
  if (Math.abs(Date.now() - at) > 5 * 60_000) return 'Signature expired';
  for (const needed of ['host', 'x-amz-date', 'x-amz-security-token', 'content-type']) {
    if (!signedHeaders.includes(needed)) return `SignedHeaders must include ${needed}`;
  }
  if (req.headers['x-amz-security-token'] !== FAKE_AWS_CREDENTIALS.sessionToken) return 'The security token included in the request is invalid.';
  const [rawPath, rawQuery = ''] = (req.url ?? '/').split('?');
  // Non-S3 services sign the URI-encoded path encoded once more, segment by segment.
  const uri = rawPath
    .split('/')
    .map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
  const headerLines = signedHeaders.map((h) => `${h}:${String(req.headers[h] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const payloadHash = createHash('sha256').update(body).digest('hex');
  const canonical = ['POST', uri, rawQuery, headerLines, signedHeaderList, payloadHash].join('\n');
  const scope = `${date}/${scopeRegion}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest();
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${FAKE_AWS_CREDENTIALS.secretAccessKey}`, date), scopeRegion), service), 'aws4_request');
  const expected = createHmac('sha256', signingKey).update(toSign).digest('hex');
  if (!safeEqual(expected, signature)) return 'The request signature we calculated does not match the signature you provided.';
  return undefined;
}
