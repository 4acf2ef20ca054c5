import { turnBatched } from '../../../local/log-batch';

test('the lines of one turn leave in one write, after the turn; the next turn starts a new write', async () => {
  const writes: string[] = [];
  const log = turnBatched((t) => writes.push(t));
  log('a');
  log('b');
  expect(writes).toEqual([]);
  await new Promise((r) => setImmediate(r));
  expect(writes).toEqual(['a\nb\n']);
  log('c');
  await new Promise((r) => setImmediate(r));
  expect(writes).toEqual(['a\nb\n', 'c\n']);
});

test('flush writes what is pending at once (process exit), and a later scheduled flush writes nothing twice', async () => {
  const writes: string[] = [];
  const log = turnBatched((t) => writes.push(t));
  log('x');
  log.flush();
  expect(writes).toEqual(['x\n']);
  await new Promise((r) => setImmediate(r));
  expect(writes).toEqual(['x\n']);
});
