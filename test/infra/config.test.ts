/**
 * The deployment configuration: validateDeploymentConfig names every problem, and the app entry
 * (bin/app.ts) turns a bad configuration into a one-screen message and exit code 1.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { DEFAULT_CONFIG } from '../../bin/default-config';
import { CellConfig, ConfigError, DeploymentConfig, validateDeploymentConfig } from '../../lib';
import { REPO_ROOT, localBin, makeTempDir, offlineEnv, removeDir } from './support/synth';

const execFileAsync = promisify(execFile);

const EU: CellConfig = {
  region: 'eu-central-1',
  providers: { openai: { kind: 'openai', baseUrl: 'https://eu.api.openai.com' } },
};
const US: CellConfig = {
  region: 'us-east-1',
  providers: { anthropic: { kind: 'anthropic', baseUrl: 'https://api.anthropic.com' } },
};

/** The ConfigError thrown for a configuration (fails the test if none is thrown). */
function problemsOf(config: DeploymentConfig): ConfigError {
  try {
    validateDeploymentConfig(config);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`validateDeploymentConfig accepted ${JSON.stringify(config)}`);
}

describe('validateDeploymentConfig', () => {
  test('accepts the default configuration and returns it', () => {
    expect(validateDeploymentConfig(DEFAULT_CONFIG)).toBe(DEFAULT_CONFIG);
    expect(validateDeploymentConfig({ cells: [EU, US] }).cells).toHaveLength(2);
  });

  test('accepts http only for loopback endpoints (local gateway, tests)', () => {
    const local: CellConfig = { region: 'eu-west-1', providers: { fake: { kind: 'openai-compatible', baseUrl: 'http://127.0.0.1:4010' } } };
    expect(() => validateDeploymentConfig({ cells: [local] })).not.toThrow();
  });

  test('accepts an Azure OpenAI resource with its api-version; apiVersion elsewhere or malformed is a problem', () => {
    const azure: CellConfig = {
      region: 'eu-north-1',
      providers: { azure: { kind: 'azure-openai', baseUrl: 'https://myres-swedencentral.openai.azure.com', apiVersion: '2024-10-21' } },
    };
    expect(() => validateDeploymentConfig({ cells: [azure] })).not.toThrow();
    const err = problemsOf({
      cells: [
        { region: 'eu-north-1', providers: { azure: { kind: 'azure-openai', baseUrl: 'https://x.openai.azure.com', apiVersion: 'v1' } } },
        { region: 'eu-west-1', providers: { openai: { kind: 'openai', baseUrl: 'https://api.openai.com', apiVersion: '2024-10-21' } } },
      ],
    });
    expect(err.message).toContain("provider 'azure' apiVersion must look like 2024-10-21");
    expect(err.message).toContain("provider 'openai' sets apiVersion, which only kind 'azure-openai' uses");
  });

  test('rejects an unknown region and lists the supported ones', () => {
    const err = problemsOf({ cells: [EU, { ...US, region: 'us-moon-1' }] });
    expect(err.problems).toEqual([expect.stringContaining("cells[1] (us-moon-1): unknown region 'us-moon-1'; supported regions: ")]);
    expect(err.message).toMatch(/^Invalid sovereign-router configuration:\n {2}- cells\[1\] \(us-moon-1\): unknown region 'us-moon-1'/);
    expect(err.message).toContain('eu-central-1');
  });

  test('rejects a duplicated region', () => {
    const err = problemsOf({ cells: [EU, US, { ...EU }] });
    expect(err.problems).toEqual([
      "cells[2] (eu-central-1): region 'eu-central-1' is listed more than once; a region has exactly one cell",
    ]);
  });

  test('rejects a cell with no provider endpoint', () => {
    const err = problemsOf({ cells: [{ region: 'eu-central-1', providers: {} }] });
    expect(err.problems).toEqual(["cells[0] (eu-central-1): no allowed provider endpoint; list at least one under 'providers'"]);
    const missing = problemsOf({ cells: [{ region: 'us-east-1' } as unknown as CellConfig] });
    expect(missing.problems).toEqual([expect.stringContaining('cells[0] (us-east-1): no allowed provider endpoint')]);
  });

  test.each([
    ['http://api.openai.com', "baseUrl must use https (http only for loopback), got 'http://api.openai.com'"],
    ['ftp://api.mistral.ai', "baseUrl must use https (http only for loopback), got 'ftp://api.mistral.ai'"],
    ['http://10.0.0.5:8080', "baseUrl must use https (http only for loopback), got 'http://10.0.0.5:8080'"],
    ['not a url', "has an invalid baseUrl 'not a url'"],
  ])('rejects the non-https URL %s', (baseUrl, expected) => {
    const err = problemsOf({ cells: [{ region: 'eu-central-1', providers: { openai: { kind: 'openai', baseUrl } } }] });
    expect(err.problems).toEqual([`cells[0] (eu-central-1): provider 'openai' ${expected}`]);
  });

  test('rejects a URL that carries credentials', () => {
    const err = problemsOf({ cells: [{ region: 'eu-central-1', providers: { openai: { kind: 'openai', baseUrl: 'https://user:sk-secret@api.openai.com' } } }] });
    expect(err.problems).toEqual(["cells[0] (eu-central-1): provider 'openai' baseUrl must not carry credentials, a query or a fragment"]);
  });

  test('rejects no cells at all', () => {
    expect(problemsOf({ cells: [] }).problems).toEqual(['cells: at least one cell (region) is required']);
    expect(problemsOf({} as DeploymentConfig).problems).toEqual(['cells: at least one cell (region) is required']);
  });

  test('reports every problem at once, one per line', () => {
    const err = problemsOf({
      stackPrefix: '1bad',
      account: '12345',
      cells: [{ region: 'mars-1', providers: { openai: { kind: 'openai', baseUrl: 'http://api.openai.com' } } }, EU, EU],
    });
    expect(err.problems).toHaveLength(5);
    expect(err.message.split('\n')).toHaveLength(6);
    expect(err.message).toContain("stackPrefix '1bad'");
    expect(err.message).toContain("account '12345' must be a 12-digit AWS account id");
    expect(err.message).toContain("unknown region 'mars-1'");
    expect(err.message).toContain('must use https');
    expect(err.message).toContain('listed more than once');
  });
});

describe('bin/app.ts with a bad configuration', () => {
  let dir: string;

  beforeAll(() => {
    dir = makeTempDir('config');
  });
  afterAll(() => removeDir(dir));

  /** Runs the app entry as `cdk synth` would (`npx tsx bin/app.ts`), with `-c config=<file>`. */
  async function runApp(configFile: string): Promise<{ code: number; stdout: string; stderr: string }> {
    const outdir = fs.mkdtempSync(path.join(dir, 'out-'));
    const env = offlineEnv({ CDK_CONTEXT_JSON: JSON.stringify({ config: configFile }), CDK_OUTDIR: outdir });
    try {
      const { stdout, stderr } = await execFileAsync(localBin('tsx'), ['bin/app.ts'], { cwd: REPO_ROOT, env, timeout: 60_000 });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string; killed?: boolean };
      if (e.killed || typeof e.code !== 'number') throw err;
      return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  }

  function writeConfig(name: string, content: string): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, content);
    return file;
  }

  /** A message for a human: no stack trace frames, no source positions, no Node.js error dump. */
  function expectNoStackTrace(output: string): void {
    expect(output).not.toMatch(/^\s+at /m);
    expect(output).not.toMatch(/\.ts:\d+:\d+/);
    expect(output).not.toContain('node:internal');
    expect(output).not.toContain('triggerUncaughtException');
  }

  type Run = Awaited<ReturnType<typeof runApp>>;
  let bad: Run;
  let notJson: Run;
  let missing: Run;

  beforeAll(async () => {
    const config: DeploymentConfig = {
      cells: [
        { region: 'eu-central-1', providers: { openai: { kind: 'openai', baseUrl: 'http://api.openai.com' } } },
        { region: 'eu-central-1', providers: { anthropic: { kind: 'anthropic', baseUrl: 'https://api.anthropic.com' } } },
        { region: 'atlantis-1', providers: {} },
      ],
    };
    // Three app processes at once: each spends most of its time loading aws-cdk-lib.
    [bad, notJson, missing] = await Promise.all([
      runApp(writeConfig('bad-cells.json', JSON.stringify(config))),
      runApp(writeConfig('not-json.json', '{ "cells": [ ')),
      runApp(path.join(dir, 'does-not-exist.json')),
    ]);
  }, 120_000);

  test('invalid cells: exit 1 with every problem listed, no stack trace', () => {
    expect({ code: bad.code, stdout: bad.stdout }).toEqual({ code: 1, stdout: '' });
    expect(bad.stderr).toContain('Invalid sovereign-router configuration:');
    expect(bad.stderr).toContain("cells[0] (eu-central-1): provider 'openai' baseUrl must use https (http only for loopback), got 'http://api.openai.com'");
    expect(bad.stderr).toContain("cells[1] (eu-central-1): region 'eu-central-1' is listed more than once");
    expect(bad.stderr).toContain("cells[2] (atlantis-1): unknown region 'atlantis-1'");
    expect(bad.stderr).toContain("cells[2] (atlantis-1): no allowed provider endpoint; list at least one under 'providers'");
    expectNoStackTrace(bad.stderr);
    // Nothing was synthesized.
    expect(bad.stderr).not.toContain('Bundling asset');
  });

  test('a file that is not JSON: exit 1 naming the file', () => {
    expect(notJson.code).toBe(1);
    expect(notJson.stderr).toContain(`configuration file '${path.join(dir, 'not-json.json')}' is not valid JSON`);
    expectNoStackTrace(notJson.stderr);
  });

  test('a missing file: exit 1 naming the file', () => {
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`cannot read configuration file '${path.join(dir, 'does-not-exist.json')}'`);
    expectNoStackTrace(missing.stderr);
  });
});
