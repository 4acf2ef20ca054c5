/** A local gateway started as a child process, as a user or a supervisor starts it. */
import type { ChildProcess } from 'node:child_process';

export interface GatewayProcess {
  proc: ChildProcess;
  url: string;
  output: () => string;
}

/** Collects the child's output and resolves once it prints its URL; fails if it exits or is slow. */
export async function waitForListening(proc: ChildProcess, what: string, pollMs = 50): Promise<GatewayProcess> {
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
    if (m) return { proc, url: m[1], output: () => out };
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`${what} did not come up:\n${out}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
