import { startProgress } from '../../../local/progress';

test('one line per stage with the time since start, then ready', () => {
  let t = 1_000;
  const lines: string[] = [];
  const p = startProgress((l) => lines.push(l), () => t);
  p.stage('opening the state directory');
  t += 250;
  p.stage('creating the root key');
  t += 1_340;
  p.ready();
  expect(lines).toEqual(['  [0.0 s] opening the state directory...', '  [0.3 s] creating the root key...', '  [1.6 s] ready']);
});
