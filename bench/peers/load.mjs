// A small closed-loop load generator, in its own process: `concurrency` clients on kept-alive
// connections, each sending the next request when the last one is complete. Prints one JSON line.
// With `targets` instead of `url`, one client visits every target in short slices, in a rotated
// order (see interleaved() below).
import { Agent, request } from 'node:http';

const o = JSON.parse(process.argv[2]);

function targetOf(t, concurrency) {
  const url = new URL(t.url);
  if (url.hostname !== '127.0.0.1' && url.hostname !== 'localhost') throw new Error('loopback only');
  const body = Buffer.from(t.body);
  return {
    name: t.name,
    url,
    body,
    agent: new Agent({ keepAlive: true, maxSockets: concurrency, keepAliveMsecs: 60_000 }),
    headers: { 'content-type': 'application/json', 'content-length': body.length, ...t.headers },
  };
}

function one(t, stream) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    let first;
    const req = request({ agent: t.agent, host: t.url.hostname, port: t.url.port, path: t.url.pathname, method: 'POST', headers: t.headers }, (res) => {
      let text = '';
      res.on('data', (c) => {
        text += c;
        if (first === undefined && (!stream || text.includes('data:'))) first = process.hrtime.bigint();
      });
      res.on('end', () => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        const ok = res.statusCode === 200 && (stream ? text.includes('[DONE]') : text.includes('"choices"'));
        resolve({ ok, ms, ttft: first === undefined ? ms : Number(first - t0) / 1e6, status: res.statusCode, text: ok ? '' : text.slice(0, 300) });
      });
      res.on('error', () => resolve({ ok: false, ms: 0, ttft: 0, status: 0 }));
    });
    req.on('error', (e) => resolve({ ok: false, ms: 0, ttft: 0, status: 0, text: String(e) }));
    req.end(t.body);
  });
}

const pct = (xs, p) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

/**
 * One client, every target in turn: `slices` times, each target gets `requests` requests (or
 * `sliceMs`, whichever ends first), in an order rotated by one per slice. Each target's p50 is
 * taken per slice, so a gateway and the upstream called directly are measured seconds apart,
 * in the same state of the host, by the same warm client process. Prints, per target, the p50 of
 * every slice (ms), and its errors.
 */
async function interleaved() {
  const targets = o.targets.map((t) => targetOf(t, 1));
  for (const t of targets) for (let i = 0; i < (o.warmup ?? 200); i++) await one(t, false);
  const out = Object.fromEntries(targets.map((t) => [t.name, { p50: [], errors: 0, firstError: undefined }]));
  for (let slice = 0; slice < o.slices; slice++) {
    for (let k = 0; k < targets.length; k++) {
      const t = targets[(k + slice) % targets.length];
      const m = out[t.name];
      const ms = [];
      const t0 = Date.now();
      for (let i = 0; i < o.requests && Date.now() - t0 < o.sliceMs; i++) {
        const r = await one(t, false);
        if (r.ok) ms.push(r.ms);
        else {
          m.errors++;
          m.firstError ??= `${r.status} ${r.text ?? ''}`;
        }
      }
      m.p50.push(pct(ms, 50));
    }
  }
  for (const t of targets) t.agent.destroy();
  process.stdout.write(JSON.stringify(out) + '\n');
}

if (o.targets) {
  await interleaved();
  process.exit(0);
}

const target = targetOf({ name: 'target', url: o.url, body: o.body, headers: o.headers }, o.concurrency);

async function run(count, untilMs) {
  const results = [];
  let started = 0;
  const t0 = Date.now();
  const client = async () => {
    while (started < count && Date.now() - t0 < untilMs) {
      started++;
      results.push(await one(target, o.stream));
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, client));
  return { results, seconds: (Date.now() - t0) / 1000 };
}

await run(o.warmup ?? 30, 10_000);
const { results, seconds } = await run(o.requests ?? Infinity, o.durationMs ?? 60_000);
const ok = results.filter((r) => r.ok);
const failed = results.filter((r) => !r.ok);
process.stdout.write(
  JSON.stringify({
    requests: results.length,
    errors: failed.length,
    firstError: failed[0] ? `${failed[0].status} ${failed[0].text ?? ''}` : undefined,
    rps: results.length / seconds,
    p50: pct(ok.map((r) => r.ms), 50),
    p99: pct(ok.map((r) => r.ms), 99),
    ttftP50: pct(ok.map((r) => r.ttft), 50),
  }) + '\n',
);
target.agent.destroy();
