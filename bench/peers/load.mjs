// A small closed-loop load generator, in its own process: `concurrency` clients on kept-alive
// connections, each sending the next request when the last one is complete. Prints one JSON line.
import { Agent, request } from 'node:http';

const o = JSON.parse(process.argv[2]);
const url = new URL(o.url);
if (url.hostname !== '127.0.0.1' && url.hostname !== 'localhost') throw new Error('loopback only');
const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency, keepAliveMsecs: 60_000 });
const body = Buffer.from(o.body);
const headers = { 'content-type': 'application/json', 'content-length': body.length, ...o.headers };

function one() {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    let first;
    const req = request({ agent, host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers }, (res) => {
      let text = '';
      res.on('data', (c) => {
        text += c;
        if (first === undefined && (!o.stream || text.includes('data:'))) first = process.hrtime.bigint();
      });
      res.on('end', () => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        const ok = res.statusCode === 200 && (o.stream ? text.includes('[DONE]') : text.includes('"choices"'));
        resolve({ ok, ms, ttft: first === undefined ? ms : Number(first - t0) / 1e6, status: res.statusCode, text: ok ? '' : text.slice(0, 300) });
      });
      res.on('error', () => resolve({ ok: false, ms: 0, ttft: 0, status: 0 }));
    });
    req.on('error', (e) => resolve({ ok: false, ms: 0, ttft: 0, status: 0, text: String(e) }));
    req.end(body);
  });
}

async function run(count, untilMs) {
  const results = [];
  let started = 0;
  const t0 = Date.now();
  const client = async () => {
    while (started < count && Date.now() - t0 < untilMs) {
      started++;
      results.push(await one());
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, client));
  return { results, seconds: (Date.now() - t0) / 1000 };
}

const pct = (xs, p) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

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
agent.destroy();
