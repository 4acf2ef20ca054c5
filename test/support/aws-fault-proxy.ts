/**
 * A loopback proxy in front of moto that can hold back or fail chosen AWS calls, so tests can
 * show what a slow or failing DynamoDB/KMS call does to a request (the SDK clients of the code
 * under test point at this proxy instead of moto).
 */
import { createServer, request, Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface AwsCall {
  /** `X-Amz-Target`, e.g. `DynamoDB_20120810.TransactWriteItems` or `TrentService.Decrypt`. */
  readonly target: string;
  readonly body: string;
}

/**
 * What to do with a call: pass it on (after `delayMs`, or once `until` resolves), answer it with an
 * error, or never answer. `until` orders events without a clock: a test holds a call, checks what
 * must already have happened, then lets it go (a delay only says "probably", on a loaded machine).
 */
export type FaultAction = { delayMs?: number; until?: Promise<void> } | { fail: number; type?: string } | { hang: true };

export interface AwsFaultProxy {
  readonly endpoint: string;
  /** Calls seen, in order. */
  readonly calls: AwsCall[];
  /** The rule applied to each call (default: pass on at once). */
  rule: (call: AwsCall) => FaultAction | undefined;
  close(): Promise<void>;
}

export async function startAwsFaultProxy(upstream: string): Promise<AwsFaultProxy> {
  const target = new URL(upstream);
  if (target.hostname !== '127.0.0.1' && target.hostname !== 'localhost') throw new Error('the fault proxy only forwards to loopback');
  const hung = new Set<import('node:http').ServerResponse>();
  const proxy: AwsFaultProxy = {
    endpoint: '',
    calls: [],
    rule: () => undefined,
    close: async () => undefined,
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const call = { target: String(req.headers['x-amz-target'] ?? ''), body: body.toString('utf8') };
      proxy.calls.push(call);
      const action = proxy.rule(call) ?? {};
      if ('hang' in action) {
        hung.add(res);
        return;
      }
      if ('fail' in action) {
        res.writeHead(action.fail, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(JSON.stringify({ __type: action.type ?? 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: 'injected by the fault proxy' }));
        return;
      }
      const forward = () => {
        const up = request(
          { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
          (upRes) => {
            res.writeHead(upRes.statusCode ?? 502, upRes.headers);
            upRes.pipe(res);
          },
        );
        up.on('error', () => {
          res.writeHead(502);
          res.end();
        });
        up.end(body);
      };
      if (action.until) void action.until.then(forward);
      else if (action.delayMs) setTimeout(forward, action.delayMs);
      else forward();
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  Object.assign(proxy, {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((ok) => {
        for (const r of hung) r.destroy();
        server.close(() => ok());
        server.closeAllConnections();
      }),
  });
  return proxy;
}

/**
 * A settle: the transaction that adds spend after the answer, deleting the reservation when the
 * request had one (a reservation write and a reclaim both name reclaimAfter; a release adds no spend).
 */
export const isSettle = (c: AwsCall) => c.target.endsWith('.TransactWriteItems') && c.body.includes('#spentMicros') && !c.body.includes('reclaimAfter');

/** Holds every call `which` picks at the proxy until `release()`; `held()` counts those that came. */
export function holdCalls(proxy: AwsFaultProxy, which: (c: AwsCall) => boolean): { release(): void; held(): number } {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let held = 0;
  proxy.rule = (c) => {
    if (!which(c)) return undefined;
    held++;
    return { until: gate };
  };
  return { release: () => release(), held: () => held };
}
