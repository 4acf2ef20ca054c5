import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { batchedLines } from '../../../local/log-batch';

const turn = () => new Promise((r) => setImmediate(r));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('lines wait up to maxDelayMs and leave together, in order, in one write', async () => {
  const writes: string[] = [];
  const log = batchedLines((t) => writes.push(t), { maxDelayMs: 30 });
  log('a');
  await turn();
  log('b');
  await turn();
  expect(writes).toEqual([]);
  await sleep(60);
  expect(writes).toEqual(['a\nb\n']);
  log('c');
  await sleep(60);
  expect(writes).toEqual(['a\nb\n', 'c\n']);
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

describe('stdoutLines in a real process: every line comes out, in order, however it ends', () => {
  const ROOT = path.join(__dirname, '..', '..', '..');
  const run = (ending: string) => {
    const script = `
      const { stdoutLines } = require('./local/log-batch');
      const log = stdoutLines({ maxDelayMs: 60_000 });
      for (let i = 0; i < 500; i++) log('line ' + i);
      process.on('SIGTERM', () => process.exit(0));
      ${ending}
    `;
    const started = Date.now();
    const out = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
    return { ...out, ms: Date.now() - started };
  };
  const expected = Array.from({ length: 500 }, (_, i) => `line ${i}`).join('\n') + '\n';

  test('the event loop ends (a pending batch neither keeps the process alive nor is lost)', () => {
    const out = run('');
    expect(out.status).toBe(0);
    expect(out.stdout).toBe(expected);
    expect(out.ms).toBeLessThan(15_000); // far below the 60 s batch delay
  });

  test('a stop signal handled with process.exit', () => {
    const out = run("setTimeout(() => process.kill(process.pid, 'SIGTERM'), 50); setInterval(() => {}, 1000);");
    expect(out.status).toBe(0);
    expect(out.stdout).toBe(expected);
  });

  test('an uncaught exception', () => {
    const out = run("setTimeout(() => { throw new Error('boom'); }, 50); setInterval(() => {}, 1000);");
    expect(out.status).not.toBe(0);
    expect(out.stderr).toContain('boom');
    expect(out.stdout).toBe(expected);
  });
});
