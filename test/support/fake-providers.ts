/**
 * Fake OpenAI, Anthropic, Mistral and Azure OpenAI APIs on 127.0.0.1, one node:http server each on a random
 * port. They speak each provider's wire format (SSE included), answer deterministically by echoing
 * the last user message, record every request, and can be scripted to fail in the ways the router
 * must survive: status codes, slow first byte, hangs, broken streams, mid-stream errors.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type FakeProviderName = 'openai' | 'anthropic' | 'mistral' | 'azure';

export type FakeBehavior =
  /** Answer with this status; `body` defaults to the provider's error shape. 429 adds retry-after. */
  | { kind: 'status'; status: number; body?: unknown; headers?: Record<string, string> }
  /** Wait before the first byte, then answer normally. */
  | { kind: 'delay'; ms: number }
  /** Never answer (until the client gives up or the fakes close). */
  | { kind: 'hang' }
  /** Send `afterEvents` SSE events, then destroy the socket. Non-streaming: half a body, then destroy. */
  | { kind: 'break-stream'; afterEvents: number }
  /** Send `afterEvents` SSE events, then the provider's in-stream error event, then end cleanly. */
  | { kind: 'stream-error'; afterEvents: number; message?: string; type?: string }
  /** Answer with one tool call instead of text. */
  | { kind: 'tool-call'; name: string; arguments: Record<string, unknown> | string }
  /** Stream normally but wait `intervalMs` before each SSE event (a slow model, for disconnect tests). */
  | { kind: 'drip'; intervalMs: number };

export interface RecordedRequest {
  provider: FakeProviderName;
  method: string;
  /** Path and query, e.g. `/v1/chat/completions`. */
  path: string;
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON body; the raw text if it was not JSON; undefined if empty. */
  body: unknown;
  /** Epoch ms at which the client closed the connection before the answer was complete, if it did. */
  abortedAt?: number;
}

export interface FakeProvider {
  readonly name: FakeProviderName;
  /** `http://127.0.0.1:<port>`; paths start with `/v1` (OpenAI SDK: pass `${baseUrl}/v1`). */
  readonly baseUrl: string;
  readonly port: number;
  /** This provider's requests, oldest first. */
  readonly requests: RecordedRequest[];
}

export interface FakeProviders {
  readonly openai: FakeProvider;
  readonly anthropic: FakeProvider;
  readonly mistral: FakeProvider;
  /**
   * An Azure OpenAI resource: `POST /openai/deployments/{deployment}/chat/completions|embeddings`
   * with `?api-version=` FAKE_AZURE_API_VERSION (or FAKE_AZURE_LEGACY_API_VERSION) and the key in the `api-key` header
   * (an `Authorization` header is refused: it would be an Entra token, never the sealed key).
   * Deployments are FAKE_AZURE_DEPLOYMENTS; answers name the deployment's model, as Azure does.
   */
  readonly azure: FakeProvider;
  /** Every provider's requests, oldest first. */
  readonly requests: RecordedRequest[];
  /** The API key the provider accepts from now on. */
  setKey(provider: FakeProviderName, key: string): void;
  /**
   * A standing answer for every request presenting `key` (accepted key or not), e.g. a 429 for one
   * tenant's rate-limited key while other keys are served; undefined removes it.
   */
  setKeyStatus(provider: FakeProviderName, key: string, status: number | undefined): void;
  /**
   * Queues behaviors, consumed one per request (FIFO) by requests that reach a known endpoint
   * with a valid key; then the default echo answer.
   */
  script(provider: FakeProviderName, behaviors: FakeBehavior[]): void;
  /** Behaviors still queued for a provider. */
  pending(provider: FakeProviderName): number;
  /** Clears requests and scripts, restores the default keys and id counters. */
  reset(): void;
  close(): Promise<void>;
}

export const DEFAULT_FAKE_KEYS: Readonly<Record<FakeProviderName, string>> = {
  openai: 'sk-fake-openai-key',
  anthropic: 'sk-ant-fake-anthropic-key',
  mistral: 'fake-mistral-key',
  azure: '0123456789abcdef0123456789abcdef',
};

/** The api-version the fake Azure resource expects by default (GA). */
export const FAKE_AZURE_API_VERSION = '2024-10-21';
/** An older api-version it also accepts, which, like Azure's, knows neither stream_options nor max_completion_tokens. */
export const FAKE_AZURE_LEGACY_API_VERSION = '2024-06-01';

/** The fake Azure resource's deployments: deployment name → model. */
export const FAKE_AZURE_DEPLOYMENTS: Readonly<Record<string, string>> = {
  'chat-eu': 'gpt-4o-mini',
  'embed-eu': 'text-embedding-3-small',
};

/** Fixed `created` timestamp so answers are byte-for-byte deterministic. */
export const FAKE_CREATED = 1_700_000_000;

/** Deterministic token estimate used by the fakes: one token per 4 characters, at least 1. */
export function fakeTokenCount(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

const MAX_BODY_BYTES = 20 * 1024 * 1024;

interface Context {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  body: Record<string, unknown>;
  behavior: FakeBehavior | undefined;
  /** Becomes true when the client disconnects, to stop delayed work. */
  closed: () => boolean;
}

abstract class FakeServer implements FakeProvider {
  readonly requests: RecordedRequest[] = [];
  baseUrl = '';
  port = 0;
  key: string;
  queue: FakeBehavior[] = [];
  readonly keyStatus = new Map<string, number>();
  counter = 0;
  private readonly server: http.Server;

  constructor(
    readonly name: FakeProviderName,
    private readonly all: RecordedRequest[],
  ) {
    this.key = DEFAULT_FAKE_KEYS[name];
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.sendError(res, 500, `fake server failure: ${String(err)}`);
        else res.destroy();
      });
    });
  }

  async listen(): Promise<void> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
    this.baseUrl = `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  reset(): void {
    this.requests.length = 0;
    this.queue = [];
    this.keyStatus.clear();
    this.counter = 0;
    this.key = DEFAULT_FAKE_KEYS[this.name];
  }

  nextId(): string {
    this.counter += 1;
    return String(this.counter).padStart(6, '0');
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let closed = false;
    const seen: { record?: RecordedRequest } = {};
    res.on('close', () => {
      closed = true;
      if (!res.writableFinished && seen.record) seen.record.abortedAt = Date.now();
    });
    const raw = await readBody(req);
    let body: unknown;
    let badJson = false;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw);
      } catch {
        body = raw;
        badJson = true;
      }
    }
    const record: RecordedRequest = {
      provider: this.name,
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      headers: req.headers,
      body,
    };
    seen.record = record;
    this.requests.push(record);
    this.all.push(record);

    const route = this.route(record.method, (req.url ?? '/').split('?')[0]);
    if (!route) return this.sendError(res, 404, `Unknown request URL: ${record.method} ${record.path}`);
    const presented = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? req.headers['x-api-key'];
    const standing = typeof presented === 'string' ? this.keyStatus.get(presented) : undefined;
    if (standing !== undefined) {
      return this.sendError(res, standing, `Standing failure for this key (${standing})`, standing === 429 ? { 'retry-after': '1' } : {});
    }
    const authError = this.checkAuth(req);
    if (authError) return this.sendError(res, authError.status, authError.message);
    if (badJson) return this.sendError(res, 400, 'The request body is not valid JSON.');
    if (record.method === 'POST' && (typeof body !== 'object' || body === null || Array.isArray(body))) {
      return this.sendError(res, 400, 'The request body must be a JSON object.');
    }

    const behavior = this.queue.shift();
    const ctx: Context = { req, res, body: (body ?? {}) as Record<string, unknown>, behavior, closed: () => closed };
    switch (behavior?.kind) {
      case 'hang':
        return; // The socket stays open until the client aborts or close() runs.
      case 'status': {
        const headers: Record<string, string> = { ...(behavior.headers ?? {}) };
        if (behavior.status === 429 && !headers['retry-after']) headers['retry-after'] = '1';
        if (behavior.body !== undefined) return sendJson(res, behavior.status, behavior.body, headers);
        return this.sendError(res, behavior.status, `Scripted failure with status ${behavior.status}`, headers);
      }
      case 'delay':
        await sleep(behavior.ms);
        if (closed) return;
        break;
      default:
        break;
    }
    await route(ctx);
  }

  protected abstract route(method: string, path: string): ((ctx: Context) => Promise<void> | void) | undefined;
  protected abstract checkAuth(req: http.IncomingMessage): { status: number; message: string } | undefined;
  protected abstract errorBody(status: number, message: string, code?: string): unknown;

  sendError(res: http.ServerResponse, status: number, message: string, headers: Record<string, string> = {}, code?: string): void {
    sendJson(res, status, this.errorBody(status, message, code), headers);
  }

  protected bearerOk(req: http.IncomingMessage): boolean {
    return req.headers.authorization === `Bearer ${this.key}`;
  }

  /** Writes SSE events, honouring break-stream and stream-error behaviors. */
  protected async stream(ctx: Context, events: string[], errorEvent: (message: string, type: string) => string): Promise<void> {
    const { res, behavior } = ctx;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.flushHeaders();
    for (let i = 0; i < events.length; i++) {
      if (ctx.closed()) return;
      if (behavior?.kind === 'break-stream' && i === behavior.afterEvents) {
        // Let the bytes already written leave before the socket dies, as a real cut would.
        await new Promise<void>((resolve) => res.write('', () => resolve()));
        res.socket?.destroy();
        return;
      }
      if (behavior?.kind === 'stream-error' && i === behavior.afterEvents) {
        res.write(errorEvent(behavior.message ?? 'Scripted stream failure', behavior.type ?? 'server_error'));
        res.end();
        return;
      }
      if (behavior?.kind === 'drip') {
        await sleep(behavior.intervalMs);
        if (ctx.closed()) return;
      }
      res.write(events[i]);
      // Yield so that events tend to arrive in separate network chunks.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    res.end();
  }

  /** Sends a JSON answer, or half of it then a dead socket under break-stream. */
  protected answer(ctx: Context, payload: unknown, headers: Record<string, string> = {}): void {
    if (ctx.behavior?.kind === 'break-stream') {
      const text = JSON.stringify(payload);
      ctx.res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
      ctx.res.write(text.slice(0, Math.floor(text.length / 2)), () => ctx.res.socket?.destroy());
      return;
    }
    sendJson(ctx.res, 200, payload, headers);
  }
}

// ---------------------------------------------------------------- shared answer logic

interface Answer {
  text: string;
  finish: 'stop' | 'length' | 'stop_sequence' | 'tool';
  stopSequence: string | null;
  tool?: { name: string; args: string };
  inputTokens: number;
  outputTokens: number;
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((part: unknown) => {
      if (typeof part !== 'object' || part === null) return '';
      const p = part as Record<string, unknown>;
      if (p.type === 'text' && typeof p.text === 'string') return p.text;
      if (p.type === 'tool_result') return textOf(p.content);
      return '';
    })
    .filter((t) => t !== '')
    .join(' ');
}

/** Echo of the last user (or tool) message, cut by max tokens (one word = one token) and stops. */
function buildAnswer(body: Record<string, unknown>, maxTokens: number | undefined, stops: string[], behavior?: FakeBehavior): Answer {
  const messages = Array.isArray(body.messages) ? (body.messages as Array<Record<string, unknown>>) : [];
  const inputTokens = fakeTokenCount(JSON.stringify(messages) + JSON.stringify(body.system ?? ''));
  if (behavior?.kind === 'tool-call') {
    const args = typeof behavior.arguments === 'string' ? behavior.arguments : JSON.stringify(behavior.arguments);
    return { text: '', finish: 'tool', stopSequence: null, tool: { name: behavior.name, args }, inputTokens, outputTokens: fakeTokenCount(args) };
  }
  const last = [...messages].reverse().find((m) => m && (m.role === 'user' || m.role === 'tool'));
  let text = `Echo: ${textOf(last?.content)}`.trim();
  let finish: Answer['finish'] = 'stop';
  let stopSequence: string | null = null;
  let cut = -1;
  for (const s of stops) {
    const at = s === '' ? -1 : text.indexOf(s);
    if (at !== -1 && (cut === -1 || at < cut)) {
      cut = at;
      stopSequence = s;
    }
  }
  if (cut !== -1) {
    text = text.slice(0, cut);
    finish = 'stop_sequence';
  }
  const words = text.split(' ');
  if (maxTokens !== undefined && words.length > maxTokens) {
    text = words.slice(0, maxTokens).join(' ');
    finish = 'length';
    stopSequence = null;
  }
  return { text, finish, stopSequence, inputTokens, outputTokens: text.split(' ').length };
}

/** Splits text into word-sized pieces that keep their leading space, as token streams do. */
function pieces(text: string): string[] {
  return text.match(/\s*\S+/g) ?? [];
}

function fragments(s: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

function sse(data: unknown, event?: string): string {
  return `${event ? `event: ${event}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function stopList(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : [];
}

// ---------------------------------------------------------------- OpenAI and Mistral

class OpenAiCompatibleServer extends FakeServer {
  private readonly mistral: boolean;

  constructor(name: 'openai' | 'mistral' | 'azure', all: RecordedRequest[]) {
    super(name, all);
    this.mistral = name === 'mistral';
  }

  protected route(method: string, path: string): ((ctx: Context) => Promise<void> | void) | undefined {
    if (method === 'POST' && path === '/v1/chat/completions') return (ctx) => this.chat(ctx);
    if (method === 'POST' && path === '/v1/embeddings') return (ctx) => this.embeddings(ctx);
    if (method === 'GET' && path === '/v1/models') return (ctx) => this.models(ctx);
    // Mistral has no Responses API.
    if (method === 'POST' && path === '/v1/responses' && !this.mistral) return (ctx) => this.responses(ctx);
    return undefined;
  }

  protected checkAuth(req: http.IncomingMessage): { status: number; message: string } | undefined {
    if (this.bearerOk(req)) return undefined;
    return { status: 401, message: this.mistral ? 'Unauthorized' : 'Incorrect API key provided.' };
  }

  protected errorBody(status: number, message: string): unknown {
    const type =
      status === 401 ? 'invalid_request_error' : status === 429 ? 'requests' : status >= 500 ? 'server_error' : 'invalid_request_error';
    const code = status === 401 ? 'invalid_api_key' : status === 429 ? 'rate_limit_exceeded' : status === 404 ? 'unknown_url' : null;
    if (this.mistral) return { object: 'error', message, type, param: null, code };
    return { error: { message, type, param: null, code } };
  }

  /** Events before the first choice (Azure sends its prompt filter results there). */
  protected streamPrelude(): string[] {
    return [];
  }

  private toolId(): string {
    // Mistral mints 9 alphanumerics, OpenAI call_...
    return this.mistral ? `fk${this.nextId()}x` : `call_fake${this.nextId()}`;
  }

  protected async chat(ctx: Context): Promise<void> {
    const { body } = ctx;
    if (typeof body.model !== 'string' || !Array.isArray(body.messages) || body.messages.length === 0) {
      return this.sendError(ctx.res, 400, 'model and a non-empty messages array are required');
    }
    const model = body.model;
    const max = num(body.max_completion_tokens) ?? num(body.max_tokens);
    const answer = buildAnswer(body, max, stopList(body.stop), ctx.behavior);
    const id = `${this.mistral ? 'cmpl-fake' : 'chatcmpl-fake'}${this.nextId()}`;
    const finish = answer.finish === 'tool' ? 'tool_calls' : answer.finish === 'length' ? 'length' : 'stop';
    const usage = {
      prompt_tokens: answer.inputTokens,
      completion_tokens: answer.outputTokens,
      total_tokens: answer.inputTokens + answer.outputTokens,
      ...(this.mistral ? {} : { prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 } }),
    };
    const toolCall = answer.tool
      ? { id: this.toolId(), type: 'function' as const, function: { name: answer.tool.name, arguments: answer.tool.args } }
      : undefined;

    if (body.stream !== true) {
      return this.answer(ctx, {
        id,
        object: 'chat.completion',
        created: FAKE_CREATED,
        model,
        choices: [
          {
            index: 0,
            message: {
              role: 'assistant',
              content: toolCall ? null : answer.text,
              ...(this.mistral ? {} : { refusal: null }),
              ...(toolCall ? { tool_calls: [toolCall] } : {}),
            },
            finish_reason: finish,
            logprobs: null,
          },
        ],
        usage,
        ...(this.mistral ? {} : { system_fingerprint: 'fp_fake' }),
      });
    }

    // OpenAI reports usage only when asked, in a last chunk with no choices; Mistral always
    // reports it on the chunk that carries finish_reason.
    const includeUsage =
      !this.mistral &&
      typeof body.stream_options === 'object' &&
      body.stream_options !== null &&
      (body.stream_options as Record<string, unknown>).include_usage === true;
    const chunk = (delta: Record<string, unknown>, finishReason: string | null = null, extra: Record<string, unknown> = {}): string =>
      sse({
        id,
        object: 'chat.completion.chunk',
        created: FAKE_CREATED,
        model,
        choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null }],
        ...(includeUsage ? { usage: null } : {}),
        ...extra,
      });
    const events: string[] = [...this.streamPrelude()];
    if (toolCall) {
      if (this.mistral) {
        events.push(chunk({ role: 'assistant', content: '' }));
        events.push(chunk({ tool_calls: [{ ...toolCall, index: 0 }] }));
      } else {
        events.push(
          chunk({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: toolCall.id, type: 'function', function: { name: toolCall.function.name, arguments: '' } }], refusal: null }),
        );
        for (const f of fragments(toolCall.function.arguments, 8)) events.push(chunk({ tool_calls: [{ index: 0, function: { arguments: f } }] }));
      }
    } else {
      events.push(chunk(this.mistral ? { role: 'assistant', content: '' } : { role: 'assistant', content: '', refusal: null }));
      for (const p of pieces(answer.text)) events.push(chunk({ content: p }));
    }
    events.push(chunk({}, finish, this.mistral ? { usage } : {}));
    if (includeUsage) {
      events.push(sse({ id, object: 'chat.completion.chunk', created: FAKE_CREATED, model, choices: [], usage }));
    }
    events.push(sse('[DONE]'));
    await this.stream(ctx, events, (message, type) => sse({ error: { message, type, param: null, code: null } }));
  }

  /**
   * OpenAI's Responses API: `input` (a string or items), `instructions`, function tools,
   * `max_output_tokens`; answers a Response object or its semantic SSE events.
   */
  protected async responses(ctx: Context): Promise<void> {
    const { body } = ctx;
    const input = body.input;
    if (typeof body.model !== 'string' || !(typeof input === 'string' || (Array.isArray(input) && input.length > 0))) {
      return this.sendError(ctx.res, 400, 'model and input (a string or a non-empty array) are required');
    }
    const messages = responsesInputAsMessages(input);
    const max = num(body.max_output_tokens);
    const answer = buildAnswer({ messages, system: body.instructions ?? '' }, max, [], ctx.behavior);
    const model = body.model;
    const id = `resp_fake${this.nextId()}`;
    const status = answer.finish === 'length' ? 'incomplete' : 'completed';
    const usage = {
      input_tokens: answer.inputTokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: answer.outputTokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: answer.inputTokens + answer.outputTokens,
    };
    const itemId = answer.tool ? `fc_fake${this.nextId()}` : `msg_fake${this.nextId()}`;
    const callId = `call_fake${this.nextId()}`;
    const doneItem = answer.tool
      ? { id: itemId, type: 'function_call', status: 'completed', call_id: callId, name: answer.tool.name, arguments: answer.tool.args }
      : { id: itemId, type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: answer.text, annotations: [], logprobs: [] }] };
    const response = (st: string, output: unknown[], withUsage: boolean) => ({
      id,
      object: 'response',
      created_at: FAKE_CREATED,
      status: st,
      background: false,
      error: null,
      incomplete_details: st === 'incomplete' ? { reason: 'max_output_tokens' } : null,
      instructions: body.instructions ?? null,
      max_output_tokens: max ?? null,
      model,
      output,
      parallel_tool_calls: true,
      previous_response_id: null,
      store: body.store !== false,
      temperature: 1,
      text: { format: { type: 'text' } },
      tool_choice: body.tool_choice ?? 'auto',
      tools: body.tools ?? [],
      top_p: 1,
      truncation: 'disabled',
      usage: withUsage ? usage : null,
      metadata: {},
    });
    if (body.stream !== true) return this.answer(ctx, response(status, [doneItem], true));

    let seq = 0;
    const ev = (type: string, fields: Record<string, unknown>) => sse({ type, sequence_number: seq++, ...fields }, type);
    const events = [ev('response.created', { response: response('in_progress', [], false) }), ev('response.in_progress', { response: response('in_progress', [], false) })];
    if (answer.tool) {
      events.push(ev('response.output_item.added', { output_index: 0, item: { ...doneItem, status: 'in_progress', arguments: '' } }));
      for (const f of fragments(answer.tool.args, 8)) events.push(ev('response.function_call_arguments.delta', { output_index: 0, item_id: itemId, delta: f }));
      events.push(ev('response.function_call_arguments.done', { output_index: 0, item_id: itemId, name: answer.tool.name, arguments: answer.tool.args }));
    } else {
      events.push(ev('response.output_item.added', { output_index: 0, item: { ...doneItem, status: 'in_progress', content: [] } }));
      events.push(ev('response.content_part.added', { output_index: 0, item_id: itemId, content_index: 0, part: { type: 'output_text', text: '', annotations: [], logprobs: [] } }));
      for (const p of pieces(answer.text)) events.push(ev('response.output_text.delta', { output_index: 0, item_id: itemId, content_index: 0, delta: p, logprobs: [] }));
      events.push(ev('response.output_text.done', { output_index: 0, item_id: itemId, content_index: 0, text: answer.text, logprobs: [] }));
      events.push(ev('response.content_part.done', { output_index: 0, item_id: itemId, content_index: 0, part: { type: 'output_text', text: answer.text, annotations: [], logprobs: [] } }));
    }
    events.push(ev('response.output_item.done', { output_index: 0, item: doneItem }));
    events.push(ev(status === 'completed' ? 'response.completed' : 'response.incomplete', { response: response(status, [doneItem], true) }));
    await this.stream(ctx, events, (message, type) => ev('error', { code: type, message, param: null }));
  }

  protected embeddings(ctx: Context): void {
    const { body } = ctx;
    const input = body.input;
    const inputs: unknown[] = Array.isArray(input) && input.length > 0 && typeof input[0] !== 'number' ? input : [input];
    if (typeof body.model !== 'string' || input === undefined || inputs.some((x) => x === undefined || x === '')) {
      return this.sendError(ctx.res, 400, 'model and a non-empty input are required');
    }
    const dims = num(body.dimensions) ?? 8;
    const base64 = body.encoding_format === 'base64';
    let tokens = 0;
    const data = inputs.map((item, index) => {
      const text = typeof item === 'string' ? item : JSON.stringify(item);
      tokens += fakeTokenCount(text);
      const vector = fakeEmbedding(text, dims);
      const embedding = base64 ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector;
      return { object: 'embedding', index, embedding };
    });
    this.answer(ctx, {
      ...(this.mistral ? { id: `embd-fake${this.nextId()}` } : {}),
      object: 'list',
      data,
      model: body.model,
      usage: { prompt_tokens: tokens, total_tokens: tokens, ...(this.mistral ? { completion_tokens: 0 } : {}) },
    });
  }

  private models(ctx: Context): void {
    const ids = this.mistral
      ? ['mistral-small-latest', 'mistral-large-latest', 'mistral-embed']
      : ['gpt-4o-mini', 'gpt-4o', 'text-embedding-3-small'];
    this.answer(ctx, {
      object: 'list',
      data: ids.map((id) => ({ id, object: 'model', created: FAKE_CREATED, owned_by: this.mistral ? 'mistralai' : 'openai' })),
    });
  }
}

/** A unit vector derived from the text, stable across runs. */
export function fakeEmbedding(text: string, dims: number): number[] {
  const out: number[] = [];
  let block = createHash('sha256').update(text).digest();
  while (out.length < dims) {
    for (const byte of block) if (out.length < dims) out.push(byte / 127.5 - 1);
    block = createHash('sha256').update(block).digest();
  }
  const norm = Math.sqrt(out.reduce((s, v) => s + v * v, 0)) || 1;
  // Round through Float32 so float and base64 encodings decode to the same numbers.
  return out.map((v) => Math.fround(v / norm));
}

// ---------------------------------------------------------------- Azure OpenAI

class AzureOpenAiServer extends OpenAiCompatibleServer {
  constructor(all: RecordedRequest[]) {
    super('azure', all);
  }

  protected override route(method: string, path: string): ((ctx: Context) => Promise<void> | void) | undefined {
    // The v1 surface: the deployment is the body's model; no api-version.
    if (method === 'POST' && path === '/openai/v1/responses') {
      return (ctx) => {
        const deployment = typeof ctx.body.model === 'string' ? ctx.body.model : '';
        const model = Object.hasOwn(FAKE_AZURE_DEPLOYMENTS, deployment) ? FAKE_AZURE_DEPLOYMENTS[deployment] : undefined;
        if (!model) return this.sendError(ctx.res, 404, `The API deployment '${deployment}' does not exist.`, {}, 'DeploymentNotFound');
        return this.responses({ ...ctx, body: { ...ctx.body, model } });
      };
    }
    const m = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|embeddings)$/.exec(path);
    if (method !== 'POST' || !m) return undefined;
    const deployment = decodeURIComponent(m[1]);
    return (ctx) => {
      const model = Object.hasOwn(FAKE_AZURE_DEPLOYMENTS, deployment) ? FAKE_AZURE_DEPLOYMENTS[deployment] : undefined;
      if (!model) return this.sendError(ctx.res, 404, `The API deployment '${deployment}' does not exist.`, {}, 'DeploymentNotFound');
      const version = new URL(ctx.req.url ?? '/', 'http://x').searchParams.get('api-version');
      if (version === FAKE_AZURE_LEGACY_API_VERSION) {
        for (const field of ['stream_options', 'max_completion_tokens']) {
          if (ctx.body[field] !== undefined) return this.sendError(ctx.res, 400, `Unrecognized request argument supplied: ${field}`);
        }
      }
      // Azure ignores the body's model: the deployment decides, and answers name its model.
      const routed = { ...ctx, body: { ...ctx.body, model } };
      return m[2] === 'embeddings' ? this.embeddings(routed) : this.chat(routed);
    };
  }

  protected override checkAuth(req: http.IncomingMessage): { status: number; message: string } | undefined {
    if (req.headers['api-key'] !== this.key || req.headers.authorization !== undefined) {
      return { status: 401, message: 'Access denied due to invalid subscription key or wrong API endpoint.' };
    }
    const url = new URL(req.url ?? '/', 'http://x');
    // The v1 surface (/openai/v1/...) takes no api-version.
    if (url.pathname.startsWith('/openai/v1/')) return url.search === '' ? undefined : { status: 400, message: 'The v1 API takes no api-version.' };
    const version = url.searchParams.get('api-version');
    if (version !== FAKE_AZURE_API_VERSION && version !== FAKE_AZURE_LEGACY_API_VERSION) return { status: 400, message: `API version '${version ?? ''}' is not supported by this fake resource.` };
    return undefined;
  }

  protected override errorBody(status: number, message: string, code?: string): unknown {
    return { error: { code: code ?? String(status), message } };
  }

  protected override streamPrelude(): string[] {
    const filter = { hate: { filtered: false, severity: 'safe' }, self_harm: { filtered: false, severity: 'safe' } };
    return [sse({ choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: [{ prompt_index: 0, content_filter_results: filter }] })];
  }
}

// ---------------------------------------------------------------- Anthropic

class AnthropicServer extends FakeServer {
  constructor(all: RecordedRequest[]) {
    super('anthropic', all);
  }

  protected route(method: string, path: string): ((ctx: Context) => Promise<void> | void) | undefined {
    if (method === 'POST' && path === '/v1/messages') return (ctx) => this.messages(ctx);
    if (method === 'GET' && path === '/v1/models') return (ctx) => this.models(ctx);
    return undefined;
  }

  protected checkAuth(req: http.IncomingMessage): { status: number; message: string } | undefined {
    // @anthropic-ai/sdk 1.x sends the key as `Authorization: Bearer`; older SDKs as `x-api-key`.
    const apiKey = req.headers['x-api-key'];
    const ok = apiKey !== undefined ? apiKey === this.key : this.bearerOk(req);
    if (!ok) return { status: 401, message: 'invalid x-api-key' };
    if (typeof req.headers['anthropic-version'] !== 'string') {
      return { status: 400, message: 'anthropic-version: header is required' };
    }
    return undefined;
  }

  protected errorBody(status: number, message: string): unknown {
    const types: Record<number, string> = {
      400: 'invalid_request_error',
      401: 'authentication_error',
      403: 'permission_error',
      404: 'not_found_error',
      413: 'request_too_large',
      429: 'rate_limit_error',
      500: 'api_error',
      503: 'overloaded_error',
      529: 'overloaded_error',
    };
    return { type: 'error', error: { type: types[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error'), message } };
  }

  private async messages(ctx: Context): Promise<void> {
    const { body } = ctx;
    if (typeof body.model !== 'string') return this.sendError(ctx.res, 400, 'model: Field required');
    if (!Array.isArray(body.messages) || body.messages.length === 0) {
      return this.sendError(ctx.res, 400, 'messages: at least one message is required');
    }
    if (typeof body.max_tokens !== 'number') return this.sendError(ctx.res, 400, 'max_tokens: Field required');
    const model = body.model;
    const answer = buildAnswer(body, body.max_tokens, stopList(body.stop_sequences), ctx.behavior);
    const id = `msg_fake${this.nextId()}`;
    const stopReason =
      answer.finish === 'tool' ? 'tool_use' : answer.finish === 'length' ? 'max_tokens' : answer.finish === 'stop_sequence' ? 'stop_sequence' : 'end_turn';
    let input: Record<string, unknown> = {};
    if (answer.tool) {
      try {
        input = JSON.parse(answer.tool.args) as Record<string, unknown>;
      } catch {
        input = {};
      }
    }
    const toolBlock = answer.tool ? { type: 'tool_use', id: `toolu_fake${this.nextId()}`, name: answer.tool.name, input } : undefined;
    const headers = { 'request-id': `req_fake${this.counter}` };

    if (body.stream !== true) {
      return this.answer(
        ctx,
        {
          id,
          type: 'message',
          role: 'assistant',
          model,
          content: toolBlock ? [toolBlock] : [{ type: 'text', text: answer.text }],
          stop_reason: stopReason,
          stop_sequence: answer.stopSequence,
          usage: { input_tokens: answer.inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: answer.outputTokens },
        },
        headers,
      );
    }

    const events: string[] = [
      sse(
        {
          type: 'message_start',
          message: {
            id,
            type: 'message',
            role: 'assistant',
            model,
            content: [],
            stop_reason: null,
            stop_sequence: null,
            usage: { input_tokens: answer.inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 },
          },
        },
        'message_start',
      ),
    ];
    if (toolBlock) {
      events.push(sse({ type: 'content_block_start', index: 0, content_block: { ...toolBlock, input: {} } }, 'content_block_start'));
      events.push(sse({ type: 'ping' }, 'ping'));
      // Anthropic opens tool input with an empty fragment.
      for (const f of ['', ...fragments(answer.tool?.args ?? '', 8)]) {
        events.push(sse({ type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: f } }, 'content_block_delta'));
      }
    } else {
      events.push(sse({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }, 'content_block_start'));
      events.push(sse({ type: 'ping' }, 'ping'));
      for (const p of pieces(answer.text)) {
        events.push(sse({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: p } }, 'content_block_delta'));
      }
    }
    events.push(sse({ type: 'content_block_stop', index: 0 }, 'content_block_stop'));
    events.push(
      sse(
        { type: 'message_delta', delta: { stop_reason: stopReason, stop_sequence: answer.stopSequence }, usage: { output_tokens: answer.outputTokens } },
        'message_delta',
      ),
    );
    events.push(sse({ type: 'message_stop' }, 'message_stop'));
    await this.stream(ctx, events, (message, type) => sse({ type: 'error', error: { type, message } }, 'error'));
  }

  private models(ctx: Context): void {
    const data = ['claude-sonnet-4-5', 'claude-haiku-4-5'].map((id) => ({
      type: 'model',
      id,
      display_name: id,
      created_at: new Date(FAKE_CREATED * 1000).toISOString(),
    }));
    this.answer(ctx, { data, has_more: false, first_id: data[0].id, last_id: data[data.length - 1].id });
  }
}

/** Responses input items as chat-like messages for buildAnswer (text parts, tool outputs). */
function responsesInputAsMessages(input: unknown): Array<Record<string, unknown>> {
  if (typeof input === 'string') return [{ role: 'user', content: input }];
  return (input as unknown[]).flatMap((raw) => {
    if (typeof raw !== 'object' || raw === null) return [];
    const item = raw as Record<string, unknown>;
    if (item.type === 'function_call_output') return [{ role: 'tool', content: typeof item.output === 'string' ? item.output : '' }];
    if (item.type !== undefined && item.type !== 'message') return [];
    const content = Array.isArray(item.content)
      ? item.content.map((p: unknown) => {
          const part = (p ?? {}) as Record<string, unknown>;
          return part.type === 'input_text' || part.type === 'output_text' ? { type: 'text', text: part.text } : {};
        })
      : item.content;
    return [{ role: item.role, content }];
  });
}

// ---------------------------------------------------------------- plumbing

function sendJson(res: http.ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(payload);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new Error('request body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

export async function startFakeProviders(): Promise<FakeProviders> {
  const all: RecordedRequest[] = [];
  const servers: Record<FakeProviderName, FakeServer> = {
    openai: new OpenAiCompatibleServer('openai', all),
    anthropic: new AnthropicServer(all),
    mistral: new OpenAiCompatibleServer('mistral', all),
    azure: new AzureOpenAiServer(all),
  };
  await Promise.all(Object.values(servers).map((s) => s.listen()));
  return {
    openai: servers.openai,
    anthropic: servers.anthropic,
    mistral: servers.mistral,
    azure: servers.azure,
    requests: all,
    setKey(provider, key) {
      servers[provider].key = key;
    },
    setKeyStatus(provider, key, status) {
      if (status === undefined) servers[provider].keyStatus.delete(key);
      else servers[provider].keyStatus.set(key, status);
    },
    script(provider, behaviors) {
      servers[provider].queue.push(...behaviors);
    },
    pending(provider) {
      return servers[provider].queue.length;
    },
    reset() {
      all.length = 0;
      for (const s of Object.values(servers)) s.reset();
    },
    async close() {
      await Promise.all(Object.values(servers).map((s) => s.close()));
    },
  };
}
