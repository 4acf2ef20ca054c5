/**
 * CPU per governed, non-streaming request on the router's main thread, with the production wiring
 * (lambda/handlers/router-wiring.ts) and the router's production AWS clients (aws-clients.ts
 * leanClients: the lean JSON-protocol client, not the SDK's clients, which the router no longer
 * uses on its path) whose smithy request handler is replaced by one answering in-process with
 * zero latency, so everything that runs in production for an AWS call is counted: marshalling,
 * SigV4 signing (@smithy/signature-v4), retry bookkeeping, response parsing. Only the socket I/O
 * of @smithy/node-http-handler is not. The answers are recorded from moto on a first request and
 * replayed after that; the provider answers in-process too. The split comes from a CPU profile:
 * each sample counts for the nearest frame of its stack in the AWS client code (the lean client
 * and the smithy libraries), crypto, translation or the router's own code.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { Readable } from 'node:stream';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { HttpRequest, HttpResponse } from '@smithy/types';
import type { ProviderClient } from '../lambda/core/router/provider-port';
import { MemorySink } from '../lambda/core/router/response-sink';
import { leanClients } from '../lambda/handlers/aws-clients';
import { productionRouter } from '../lambda/handlers/router-wiring';
import { testCredentials } from '../test/support/aws-clients';
import { startRouterHarness } from '../test/support/router-harness';

/** Records each AWS operation's answer from a real endpoint, then replays it without I/O. */
class RecordReplayHandler {
  readonly metadata = { handlerProtocol: 'http/1.1' };
  replaying = false;
  private readonly inner = new NodeHttpHandler();
  private readonly answers = new Map<string, { statusCode: number; headers: Record<string, string>; body: Buffer }>();
  readonly calls = new Map<string, number>();

  async handle(request: HttpRequest): Promise<{ response: HttpResponse }> {
    const op = String(request.headers['x-amz-target'] ?? request.headers['X-Amz-Target'] ?? '?');
    this.calls.set(op, (this.calls.get(op) ?? 0) + 1);
    if (this.replaying) {
      const a = this.answers.get(op);
      if (!a) throw new Error(`no recorded answer for ${op}`);
      // A fresh copy, as from a socket: the client zero-fills response bytes once parsed.
      return { response: { statusCode: a.statusCode, headers: { ...a.headers }, body: Readable.from([Buffer.from(a.body)]) } };
    }
    const { response } = await this.inner.handle(request as never);
    const chunks: Buffer[] = [];
    for await (const c of response.body as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
    const body = Buffer.concat(chunks);
    const headers = { ...response.headers, 'content-length': String(body.length) };
    this.answers.set(op, { statusCode: response.statusCode, headers, body: Buffer.from(body) });
    return { response: { statusCode: response.statusCode, headers, body: Readable.from([body]) } };
  }
  updateHttpClientConfig(): void {}
  httpHandlerConfigs() {
    return {};
  }
  destroy(): void {
    this.inner.destroy();
  }
}
const COMPLETION = JSON.stringify({
  id: 'chatcmpl-cpu',
  object: 'chat.completion',
  created: 1700000000,
  model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', content: 'pong' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 8, completion_tokens: 1, total_tokens: 9 },
});
const inProcessProvider: ProviderClient = {
  async send() {
    return { status: 200, headers: new Headers({ 'content-type': 'application/json' }), body: new Response(COMPLETION).body };
  },
};

export interface CpuResult {
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Percent of busy profile samples per part. */
  /** awsClient: the lean client, its marshalling and the smithy libraries (signer, transport). */
  readonly split: Record<'awsClient' | 'crypto' | 'translation' | 'router' | 'node' | 'gc', number>;
  readonly awsCallsPerRequest: Record<string, number>;
}

const category = (url: string, fn: string): keyof CpuResult['split'] => {
  if (fn === '(garbage collector)') return 'gc';
  if (/node_modules\/(@aws-sdk|@smithy|@aws-crypto|@aws)\//.test(url) || /lambda\/adapters\/(aws-json-|aws-rpc|dynamo-json|dynamo-lean)/.test(url)) return 'awsClient';
  if (/lambda\/core\/(envelope|crypto-util|token|canonical|tenant-factor)\.ts/.test(url) || /lambda\/adapters\/kms-data-key-service/.test(url)) return 'crypto';
  if (/lambda\/core\/(translate\/|router\/upstream-exchange|sse)/.test(url)) return 'translation';
  if (/\/(lambda|local)\//.test(url)) return 'router';
  return 'node';
};

export async function cpuPerRequest(opts: { requests?: number } = {}): Promise<CpuResult> {
  const n = opts.requests ?? 3000;
  const h = await startRouterHarness();
  try {
    const { invokeToken } = await h.tenant('cpu', { policy: { monthlyBudgetUsd: 1_000_000 } });
    const handler = new RecordReplayHandler();
    const clients = leanClients(h.cell.config.region, h.cell.config.requestDeadlineMs, { endpoint: h.moto.endpoint, credentials: testCredentials, requestHandler: handler });
    const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
    const router = productionRouter({ config: h.cell.config, clients, providers: inProcessProvider, log: silent, emitMetric: () => undefined });
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'ping' }] });
    const one = async () => {
      const sink = new MemorySink();
      const record = await router({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', authorization: `Bearer ${invokeToken}` }, body, sourceIp: '203.0.113.7' }, sink);
      if (sink.status !== 200 || record?.decision !== 'ok' || !(record.costUsd! > 0)) throw new Error(`cpu bench request failed: ${sink.status} ${sink.body}`);
    };
    await one(); // records every answer (and caches the pepper)
    await one();
    handler.replaying = true;
    handler.calls.clear();
    for (let i = 0; i < 500; i++) await one();
    const awsCallsPerRequest = Object.fromEntries([...handler.calls].map(([k, v]) => [k.split('.').pop()!, Math.round((v / 500) * 100) / 100]));

    const samples: number[] = [];
    for (let i = 0; i < n; i++) {
      const c0 = process.cpuUsage();
      await one();
      const c = process.cpuUsage(c0);
      samples.push((c.user + c.system) / 1000);
    }
    samples.sort((a, b) => a - b);

    const session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 50 });
    await session.post('Profiler.start');
    for (let i = 0; i < 1000; i++) await one();
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    if (process.env.BENCH_CPU_PROFILE) writeFileSync(process.env.BENCH_CPU_PROFILE, JSON.stringify(profile));
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    const parentOf = new Map<number, number>();
    for (const node of profile.nodes) for (const c of node.children ?? []) parentOf.set(c, node.id);
    // A sample counts for the nearest frame on its stack that is ours, the AWS client's or crypto: node
    // internals (streams, hashing, buffers) count for whoever called them; 'node' is what is left
    // (event loop, microtask queue, timers with no caller of ours on the stack).
    const categoryOf = (id: number): keyof CpuResult['split'] => {
      const fn = byId.get(id)!.callFrame.functionName;
      if (fn === '(garbage collector)') return 'gc';
      for (let cur: number | undefined = id; cur !== undefined; cur = parentOf.get(cur)) {
        const frame = byId.get(cur)!.callFrame;
        const c = category(frame.url, frame.functionName);
        if (c !== 'node') return c;
      }
      return 'node';
    };
    const split = { awsClient: 0, crypto: 0, translation: 0, router: 0, node: 0, gc: 0 };
    const deltas = profile.timeDeltas ?? [];
    // The profiler's own stop call (node:inspector) is not the router's.
    const isProfiler = (id: number) => {
      for (let cur: number | undefined = id; cur !== undefined; cur = parentOf.get(cur)) if (byId.get(cur)!.callFrame.url === 'node:inspector') return true;
      return false;
    };
    (profile.samples ?? []).forEach((id, i) => {
      const fn = byId.get(id)!.callFrame.functionName;
      if (fn === '(idle)' || fn === '(program)' || isProfiler(id)) return;
      split[categoryOf(id)] += deltas[i] ?? 0;
    });
    if (process.env.BENCH_CPU_TOP) {
      const self = new Map<string, number>();
      (profile.samples ?? []).forEach((id, i) => {
        const node = byId.get(id)!;
        const key = `${node.callFrame.functionName || '(anon)'} ${node.callFrame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/(lambda|bench)\//, '$1/')}:${node.callFrame.lineNumber}`;
        self.set(key, (self.get(key) ?? 0) + (deltas[i] ?? 0));
      });
      for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.BENCH_CPU_TOP))) console.error(`${(v / 1000).toFixed(1).padStart(8)} ms  ${k}`);
    }
    const busy = Object.values(split).reduce((a, b) => a + b, 0);
    const pct = (k: keyof typeof split) => Math.round((split[k] / busy) * 1000) / 10;
    return {
      p50Ms: samples[Math.floor(samples.length / 2)],
      p99Ms: samples[Math.floor(samples.length * 0.99)],
      split: { awsClient: pct('awsClient'), crypto: pct('crypto'), translation: pct('translation'), router: pct('router'), node: pct('node'), gc: pct('gc') },
      awsCallsPerRequest,
    };
  } finally {
    await h.close();
  }
}

if (require.main === module) {
  cpuPerRequest()
    .then((r) => console.log(JSON.stringify(r, null, 2)))
    .catch((e) => {
      console.error(e);
      process.exitCode = 1;
    });
}
