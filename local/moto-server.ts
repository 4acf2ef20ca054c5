import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import { freePort } from './free-port';

/** A moto server on 127.0.0.1 serving KMS, DynamoDB and Secrets Manager to the real SDK clients. */
export interface MotoServer {
  /** `http://127.0.0.1:PORT`, for the SDK clients' `endpoint`. */
  readonly endpoint: string;
  readonly port: number;
  /** Drops every resource in every service (POST /moto-api/reset). */
  reset(): Promise<void>;
  /** Stops the server; safe to call more than once. */
  stop(): Promise<void>;
  /** Tail of the server's stdout and stderr, for failure messages. */
  output(): string;
}

export interface StartMotoOptions {
  /** Fixed port; default is a free one picked by the OS. */
  port?: number;
  /** How long to wait for the server to answer; default 20 s. */
  startTimeoutMs?: number;
  /**
   * Local gateway persistence: 32 bytes (hex) from which KMS key ids and key material are derived,
   * so the same root key exists again after a restart. Never used against real AWS.
   */
  kmsSeedHex?: string;
}

const REPO_ROOT = resolve(__dirname, '..');
const DETERMINISTIC_KMS = join(REPO_ROOT, 'local', 'moto_deterministic_kms.py');
const VENV_BIN = join(REPO_ROOT, '.venv', 'bin');
const MOTO_SERVER = join(VENV_BIN, 'moto_server');
const PYTHON = join(VENV_BIN, 'python');
const HOST = '127.0.0.1';
const OUTPUT_LIMIT = 16_384;

// Runs the moto_server console script, plus a watchdog thread: when our end of its stdin closes
// (this process exited, even by SIGKILL, which skips 'exit' handlers) the server exits too.
// The server handles one request at a time: moto's DynamoDB backend is not thread-safe, and
// conditional writes and transactions must be atomic as they are in DynamoDB.
const WATCHDOG = [
  'import os, runpy, sys, threading',
  'import werkzeug.serving as _serving',
  '_run_simple = _serving.run_simple',
  "_serving.run_simple = lambda *a, **k: _run_simple(*a, **{**k, 'threaded': False})",
  'def _watch():',
  '    sys.stdin.buffer.read()',
  '    os._exit(0)',
  'threading.Thread(target=_watch, daemon=True).start()',
  'sys.argv = sys.argv[1:]',
  "runpy.run_path(sys.argv[0], run_name='__main__')",
].join('\n');

class PortInUseError extends Error {}

export async function startMoto(opts: StartMotoOptions = {}): Promise<MotoServer> {
  for (const path of [MOTO_SERVER, PYTHON]) {
    if (!existsSync(path)) {
      throw new Error(
        `moto is not installed: ${path} is missing. From ${REPO_ROOT} run \`bash .ci/run\`, or ` +
          "`python3 -m venv .venv && .venv/bin/pip install 'moto[server]'`.",
      );
    }
  }
  const timeoutMs = opts.startTimeoutMs ?? 20_000;
  // freePort() releases the port before moto binds it, so retry a lost race with a new port.
  const attempts = opts.port === undefined ? 3 : 1;
  for (let attempt = 1; ; attempt++) {
    const port = opts.port ?? (await freePort());
    try {
      return await launch(port, timeoutMs, opts.kmsSeedHex);
    } catch (err) {
      if (!(err instanceof PortInUseError) || attempt >= attempts) throw err;
    }
  }
}

async function launch(port: number, timeoutMs: number, kmsSeedHex?: string): Promise<MotoServer> {
  const script = kmsSeedHex ? DETERMINISTIC_KMS : MOTO_SERVER;
  const env = kmsSeedHex ? { ...childEnv(), SR_LOCAL_KMS_SEED: kmsSeedHex, SR_MOTO_SERVER: MOTO_SERVER } : childEnv();
  const child = spawn(PYTHON, ['-c', WATCHDOG, script, '-H', HOST, '-p', String(port)], {
    cwd: REPO_ROOT,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
    // Its own process group: a terminal's Ctrl-C reaches the gateway, which stops moto after its
    // last dump; the stdin watchdog still ends moto if the gateway dies.
    detached: true,
  });
  let output = '';
  const capture = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_LIMIT);
  };
  child.stdout.on('data', capture);
  child.stderr.on('data', capture);
  child.stdin.on('error', () => undefined); // EPIPE if the server died first; 'exit' reports that

  let exited = false;
  const exitedPromise = new Promise<void>((done) => {
    child.once('exit', () => {
      exited = true;
      done();
    });
    child.once('error', (err) => {
      capture(Buffer.from(`spawn error: ${err.message}\n`));
      exited = true;
      done();
    });
  });
  const killOnExit = (): void => void child.kill('SIGKILL');
  process.on('exit', killOnExit);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      process.removeListener('exit', killOnExit);
      if (!exited) {
        // Closing stdin trips the watchdog (exits in ms); moto's own SIGTERM handler takes ~1 s and
        // ends in SIGABRT, so the only signal is a SIGKILL fallback.
        child.stdin.end();
        const force = setTimeout(() => child.kill('SIGKILL'), 2_000);
        await exitedPromise;
        clearTimeout(force);
      }
    })());

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited) {
      await stop();
      const message = `moto server exited before answering on ${HOST}:${port}:\n${output}`;
      throw /address already in use/i.test(output) ? new PortInUseError(message) : new Error(message);
    }
    // Require our own child's bind banner too: with a fixed port, another server may be answering.
    const bound = output.includes(`Running on http://${HOST}:${port}`);
    if (bound && (await httpStatus('GET', port, '/moto-api/', 1_000).catch(() => 0)) === 200) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`moto server did not answer on ${HOST}:${port} within ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    endpoint: `http://${HOST}:${port}`,
    port,
    stop,
    output: () => output,
    async reset() {
      const status = await httpStatus('POST', port, '/moto-api/reset', 10_000);
      if (status !== 200) throw new Error(`moto reset answered HTTP ${status}:\n${output}`);
    },
  };
}

/** A fresh environment: no inherited proxies or real credentials, and nothing for boto to look up. */
function childEnv(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    LANG: 'C.UTF-8',
    PYTHONUNBUFFERED: '1',
    PYTHONDONTWRITEBYTECODE: '1',
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
    NO_PROXY: '*',
    no_proxy: '*',
  };
}

function httpStatus(method: string, port: number, path: string, timeoutMs: number): Promise<number> {
  return new Promise((done, fail) => {
    const req = request({ host: HOST, port, path, method, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.once('end', () => done(res.statusCode ?? 0));
      res.once('error', fail);
    });
    req.once('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.once('error', fail);
    req.end();
  });
}
