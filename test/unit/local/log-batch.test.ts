import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { jsonLogger } from '../../../lambda/core/logger';
import { batchedJsonLogger, batchedLines } from '../../../local/log-batch';
import { canaryHits, makeCanary } from '../../support/canary';

const turn = () => new Promise((r) => setImmediate(r));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('lines wait up to maxDelayMs and leave together, in order, in one write', async () => {
  // The delay runs on fake timers (turns stay real): on the real clock a loaded machine that
  // pauses this process for 30 ms between two turns fires the timer between 'a' and 'b'.
  jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
  try {
    const writes: string[] = [];
    const log = batchedLines((t) => writes.push(t), { maxDelayMs: 30 });
    log('a');
    await turn();
    log('b');
    await turn();
    jest.advanceTimersByTime(29);
    expect(writes).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(writes).toEqual(['a\nb\n']);
    log('c');
    jest.advanceTimersByTime(29);
    expect(writes).toEqual(['a\nb\n']);
    jest.advanceTimersByTime(1);
    expect(writes).toEqual(['a\nb\n', 'c\n']);
  } finally {
    jest.useRealTimers();
  }
});

test('once maxBytes are pending the batch leaves after the current turn, not at the timer', async () => {
  const writes: string[] = [];
  const log = batchedLines((t) => writes.push(t), { maxDelayMs: 10_000, maxBytes: 10 });
  log('12345');
  await turn();
  expect(writes).toEqual([]);
  log('67890');
  log('more of the same turn');
  expect(writes).toEqual([]); // never inside the turn (its responses go first)
  await turn();
  expect(writes).toEqual(['12345\n67890\nmore of the same turn\n']);
  log.flush(); // nothing pending, the long timer was cleared: no empty write
  expect(writes).toHaveLength(1);
});

test('maxDelayMs 0: the lines of one turn leave in one write, after the turn', async () => {
  const writes: string[] = [];
  const log = batchedLines((t) => writes.push(t), { maxDelayMs: 0 });
  log('a');
  log('b');
  expect(writes).toEqual([]);
  await turn();
  expect(writes).toEqual(['a\nb\n']);
  log('c');
  await turn();
  expect(writes).toEqual(['a\nb\n', 'c\n']);
});

test('flush writes what is pending at once (process exit), and the scheduled flush writes nothing twice', async () => {
  const writes: string[] = [];
  const log = batchedLines((t) => writes.push(t), { maxDelayMs: 20 });
  log('x');
  log.flush();
  expect(writes).toEqual(['x\n']);
  await sleep(50);
  expect(writes).toEqual(['x\n']);
});

test('the batched JSON logger writes the very lines of jsonLogger (timestamp taken at the call), formatted only when the batch leaves', async () => {
  const immediate: string[] = [];
  const direct = jsonLogger('local-gateway', (l) => immediate.push(l));
  const writes: string[] = [];
  const log = batchedJsonLogger('local-gateway', (t) => writes.push(t), { maxDelayMs: 30 });
  const fields = { requestId: 'r1', tenantId: 't', status: 200, costUsd: 0.000002, fallbackChain: 'openai/gpt-4o-mini:ok', timeToFirstTokenMs: undefined, aborted: false };
  const realNow = Date.now;
  Date.now = () => Date.parse('2026-12-01T21:00:00.123Z');
  try {
    direct.info('request', fields);
    direct.warn('w');
    direct.error('e', { errorName: 'X' });
    log.info('request', fields);
    log.warn('w');
    log.error('e', { errorName: 'X' });
  } finally {
    Date.now = realNow;
  }
  expect(writes).toEqual([]);
  await sleep(60);
  // jsonLogger's timestamp comes from new Date(), which reads the real clock: compare without it.
  const noTime = (l: string) => ({ ...JSON.parse(l), timestamp: undefined });
  expect(writes).toHaveLength(1);
  const got = writes[0].split('\n');
  expect(got.pop()).toBe('');
  expect(got.map(noTime)).toEqual(immediate.map(noTime));
  expect(got.map((l) => JSON.parse(l).timestamp)).toEqual(['2026-12-01T21:00:00.123Z', '2026-12-01T21:00:00.123Z', '2026-12-01T21:00:00.123Z']);
  expect(Object.keys(JSON.parse(got[0]))).toEqual(Object.keys(JSON.parse(immediate[0])));
});

test('the batched JSON logger writes the very text of jsonLogger for every shape of fields (a fixed member replaced, an array-index key, a toJSON, none, empty, undefined values, a message to escape)', async () => {
  const immediate: string[] = [];
  const direct = jsonLogger('svc "q"', (l) => immediate.push(l));
  const writes: string[] = [];
  const log = batchedJsonLogger('svc "q"', (t) => writes.push(t), { maxDelayMs: 20 });
  const shapes = [
    undefined,
    {},
    { requestId: 'r1', status: 200, costUsd: 0.000002, aborted: false, timeToFirstTokenMs: undefined },
    { level: 'FORGED', a: 1 },
    { message: 'replaced', timestamp: 'x' },
    { b: 2, 7: 'seven', '01': 'not an index' },
    { toJSON: () => ({ z: 1 }) },
  ] as unknown as (Record<string, string | number | boolean | undefined> | undefined)[];
  for (const f of shapes) {
    direct.warn('m "quoted"\n\u2028', f);
    log.warn('m "quoted"\n\u2028', f);
  }
  await sleep(50);
  const got = writes.join('').split('\n');
  expect(got.pop()).toBe('');
  const untimed = (l: string) => l.replace(/"timestamp":"[^"]*"/, '"timestamp":"T"');
  expect(got.map(untimed)).toEqual(immediate.map(untimed));
});

test('the batched JSON logger writes the fields as they were at the call: a caller that changes its object afterwards (a key, a token added, a value replaced) changes nothing written', async () => {
  const writes: string[] = [];
  const log = batchedJsonLogger('local-gateway', (t) => writes.push(t), { maxDelayMs: 20 });
  const key = makeCanary('deferred-key');
  const fields: Record<string, string | number | undefined> = { requestId: 'r1', status: 200, model: 'gpt-4o-mini' };
  log.info('request', fields);
  fields.apiKey = key;
  fields.status = 500;
  fields.model = key;
  delete fields.requestId;
  await sleep(60);
  expect(writes).toHaveLength(1);
  expect(JSON.parse(writes[0])).toMatchObject({ message: 'request', requestId: 'r1', status: 200, model: 'gpt-4o-mini' });
  expect(canaryHits(writes.join(''), [key])).toEqual([]);
});

test('the batched JSON logger leaves after the turn once about maxBytes of records are pending', async () => {
  const writes: string[] = [];
  const log = batchedJsonLogger('s', (t) => writes.push(t), { maxDelayMs: 10_000, maxBytes: 1_500 });
  for (let i = 0; i < 3; i++) log.info('m', { i });
  await turn();
  expect(writes).toEqual([]);
  log.info('m', { i: 3 });
  await turn();
  expect(writes).toHaveLength(1);
  expect(writes[0].trim().split('\n').map((l) => JSON.parse(l).i)).toEqual([0, 1, 2, 3]);
});

describe('stdoutLog in a real process: every line comes out, in order, however it ends', () => {
  const ROOT = path.join(__dirname, '..', '..', '..');
  const run = (ending: string) => {
    const script = `
      const { stdoutLog } = require('./local/log-batch');
      const log = stdoutLog('svc', { maxDelayMs: 60_000, maxBytes: 1e9 });
      for (let i = 0; i < 500; i++) log.info('line', { i });
      process.on('SIGTERM', () => process.exit(0));
      ${ending}
    `;
    const started = Date.now();
    const out = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
    return { ...out, ms: Date.now() - started };
  };
  const lines = (stdout: string) => stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { level: string; service: string; message: string; i: number });
  const expected = Array.from({ length: 500 }, (_, i) => ({ level: 'INFO', service: 'svc', message: 'line', i }));

  test('the event loop ends (a pending batch neither keeps the process alive nor is lost)', () => {
    const out = run('');
    expect(out.status).toBe(0);
    expect(lines(out.stdout)).toMatchObject(expected);
    expect(out.ms).toBeLessThan(15_000); // far below the 60 s batch delay
  });

  test('a stop signal handled with process.exit', () => {
    const out = run("setTimeout(() => process.kill(process.pid, 'SIGTERM'), 50); setInterval(() => {}, 1000);");
    expect(out.status).toBe(0);
    expect(lines(out.stdout)).toMatchObject(expected);
  });

  test('an uncaught exception', () => {
    const out = run("setTimeout(() => { throw new Error('boom'); }, 50); setInterval(() => {}, 1000);");
    expect(out.status).not.toBe(0);
    expect(out.stderr).toContain('boom');
    expect(lines(out.stdout)).toMatchObject(expected);
  });
});

describe('stdoutLog when its reader is gone or slow (a pipe: asynchronous in node, unlike a file or a terminal)', () => {
  const ROOT = path.join(__dirname, '..', '..', '..');
  const start = (script: string, args: string[] = []) => {
    const child = spawn(process.execPath, [...args, '--import', 'tsx', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    return { child, stderr: () => stderr, exited };
  };
  const until = async (cond: () => boolean, what: string, ms = 20_000) => {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(10);
    }
  };

  test('the reader goes away (EPIPE): the process keeps running and ends normally, one note on stderr', async () => {
    const script = `
      const { stdoutLog } = require('./local/log-batch');
      // Logs until well after the EPIPE (the sink's note on stderr), however late the reader left:
      // a fixed 800 ms of logging could end before a loaded test process destroyed the pipe.
      let closed = false;
      const note = console.error;
      console.error = (...a) => { closed = true; note(...a); };
      const log = stdoutLog('svc', { maxDelayMs: 2 });
      let i = 0;
      let after = 0;
      const t = setInterval(() => {
        log.info('line', { i: i++ });
        if (closed && ++after === 200) { clearInterval(t); process.stderr.write('still serving after ' + i + ' lines\\n'); }
      }, 1);
      setTimeout(() => { clearInterval(t); process.stderr.write('no EPIPE after ' + i + ' lines\\n'); }, 20_000).unref();
    `;
    const p = start(script);
    p.child.stdout!.once('data', () => p.child.stdout!.destroy());
    const code = await p.exited;
    expect(p.stderr()).toMatch(/still serving after \d+ lines/);
    expect(p.stderr()).not.toMatch(/Unhandled 'error'|Error: write EPIPE/);
    expect(p.stderr()).toMatch(/stdout is closed/);
    expect(code).toBe(0);
  }, 30_000);

  test('a reader that stops reading: memory stays bounded, kept lines in order, then one line counting the dropped ones', async () => {
    const script = `
      const { stdoutLog } = require('./local/log-batch');
      // A count, not a time: a loaded machine logs fewer lines in a given time. The exit wait is
      // generous for the same reason: the reader resumes once this test process gets to it.
      const log = stdoutLog('svc', { maxDelayMs: 5, exitWaitMs: 30_000 });
      const pad = 'x'.repeat(300);
      let i = 0;
      const t = setInterval(() => { for (let k = 0; k < 200; k++) log.info('line', { i: i++, pad }); if (i >= 80_000) measure(); }, 2);
      const measure = () => {
        clearInterval(t);
        global.gc();
        const m = process.memoryUsage();
        process.stderr.write('measured ' + JSON.stringify({ logged: i, held: m.heapUsed + m.external + m.arrayBuffers }) + '\\n');
        setTimeout(() => log.info('last', { i: i++ }), 500);
      };
      global.gc();
      const m0 = process.memoryUsage();
      process.stderr.write('baseline ' + JSON.stringify({ held: m0.heapUsed + m0.external + m0.arrayBuffers }) + '\\n');
    `;
    const p = start(script, ['--expose-gc']);
    let stdout = '';
    p.child.stdout!.setEncoding('utf8');
    p.child.stdout!.on('data', (d: string) => (stdout += d));
    p.child.stdout!.pause();
    await until(() => /measured \{.*\}\n/.test(p.stderr()), 'the measurement');
    p.child.stdout!.resume();
    expect(await p.exited).toBe(0);
    const base = JSON.parse(/baseline (\{.*\})/.exec(p.stderr())![1]) as { held: number };
    const measured = JSON.parse(/measured (\{.*\})/.exec(p.stderr())![1]) as { logged: number; held: number };
    expect(measured.logged).toBeGreaterThan(50_000); // over 20 MB of lines offered
    expect(measured.held - base.held).toBeLessThan(8 * 1024 * 1024);
    const records = stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { message: string; i?: number; dropped?: number });
    const kept = records.filter((r) => r.message === 'line').map((r) => r.i!);
    for (let k = 1; k < kept.length; k++) expect(kept[k]).toBeGreaterThan(kept[k - 1]);
    const notes = records.filter((r) => r.message.startsWith('log lines dropped'));
    const dropped = notes.reduce((s, r) => s + r.dropped!, 0);
    expect(dropped).toBeGreaterThan(0);
    expect(kept.length + dropped).toBe(measured.logged);
    expect(records[records.length - 1]).toMatchObject({ message: 'last', i: measured.logged });
  }, 60_000);

  test('a stop while the reader is behind: the pending lines are written at exit once it reads again', async () => {
    // The exit wait is generous: the reader resumes once this (loaded) test process sees 'exiting';
    // what is shown is that the lines pending at exit are written then, in order, none lost.
    const script = `
      const { stdoutLog } = require('./local/log-batch');
      const log = stdoutLog('svc', { maxDelayMs: 5, exitWaitMs: 30_000 });
      const pad = 'y'.repeat(300);
      let i = 0;
      const t = setInterval(() => { for (let k = 0; k < 100; k++) log.info('line', { i: i++, pad }); if (i >= 2000) { clearInterval(t); setTimeout(() => { process.stderr.write('exiting\\n'); process.exit(0); }, 50); } }, 2);
    `;
    const p = start(script);
    let stdout = '';
    p.child.stdout!.setEncoding('utf8');
    p.child.stdout!.on('data', (d: string) => (stdout += d));
    p.child.stdout!.pause();
    await until(() => p.stderr().includes('exiting'), 'the stop');
    p.child.stdout!.resume();
    expect(await p.exited).toBe(0);
    const kept = stdout.split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { i: number }).i);
    expect(kept).toEqual(Array.from({ length: 2000 }, (_, k) => k));
  }, 60_000);
});
