/**
 * The router app behind a real node:http server on 127.0.0.1, wired like the local gateway
 * (local/gateway.ts: its sink and its client-disconnect signal), so official SDKs can call a
 * harness router and a test can watch what a disconnect does. Usage records are collected.
 */
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { HttpRequest } from '../../lambda/core/http';
import type { ResponseSink } from '../../lambda/core/router/response-sink';
import type { UsageRecord } from '../../lambda/core/router/usage-record';
import { clientGoneSignal, nodeSink } from '../../local/gateway';

export interface RouterServer {
  /** `http://127.0.0.1:<port>`; the OpenAI SDK takes `${url}/v1`. */
  readonly url: string;
  readonly records: UsageRecord[];
  /** Resolves when every request received so far has finished its end stage (record written). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export async function serveRouter(router: (req: HttpRequest, sink: ResponseSink) => Promise<UsageRecord | undefined>): Promise<RouterServer> {
  const records: UsageRecord[] = [];
  const inFlight = new Set<Promise<void>>();
  const server = http.createServer((req, res) => {
    const run = (async () => {
      const chunks: Buffer[] = [];
      for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k.toLowerCase()] = v;
      const [path] = (req.url ?? '/').split('?', 1);
      const sink = nodeSink(res);
      try {
        const record = await router({
          method: req.method ?? 'GET',
          path,
          headers,
          body: chunks.length ? Buffer.concat(chunks).toString('utf8') : undefined,
          sourceIp: '203.0.113.7',
          signal: clientGoneSignal(res),
        }, sink);
        if (record) records.push(record);
      } finally {
        sink.done();
      }
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
    inFlight.add(run);
    void run.finally(() => inFlight.delete(run));
  });
  server.keepAliveTimeout = 1_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    records,
    async idle() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
