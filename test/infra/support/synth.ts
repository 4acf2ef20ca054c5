/**
 * Synthesis helpers for the infrastructure tests.
 *
 * Every helper builds the app the way `bin/app.ts` does, through `buildApp(app, config)`, and
 * applies the context from `cdk.json` so that an in-process synth renders the same templates as
 * `npx cdk synth`. NodejsFunction bundling is skipped (context `aws:cdk:bundling-stacks: []`)
 * except in `synthBundledApp`, which runs esbuild for real into a temporary outdir.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as cxapi from 'aws-cdk-lib/cx-api';
import { IConstruct } from 'constructs';
import { buildApp } from '../../../bin/build-app';
import { DEFAULT_CONFIG } from '../../../bin/default-config';
import { DeploymentConfig, RegionalRouterStack } from '../../../lib';

/** Root of the repository (where package.json and cdk.json live). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

/** Context key that lists the stacks whose assets are bundled; `[]` bundles nothing. */
export const BUNDLING_STACKS_CONTEXT = 'aws:cdk:bundling-stacks';

/**
 * When true (the CDK default, and what the CLI does), a failing validation plugin such as cdk-nag
 * makes `app.synth()` throw. Tests of template properties turn it off so that a nag finding does
 * not hide every other result; cdk-nag.test.ts and cdk-cli-synth.test.ts keep it on.
 */
export const FAIL_ON_VALIDATION_ERRORS_CONTEXT = '@aws-cdk/core:failSynthOnValidationErrors';

/** The `context` block of cdk.json: feature flags the CLI passes to the app. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'cdk.json'), 'utf8')) as { context?: Record<string, unknown> };
  return { ...(cdkJson.context ?? {}) };
}

const tempDirs = new Set<string>();

/**
 * A fresh temporary directory. It is removed after the test file (or earlier with `removeDir`).
 */
export function makeTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sovereign-router-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

/** Removes every temporary directory made through this module that is still there. */
export function removeTempDirs(): void {
  for (const dir of tempDirs) removeDir(dir);
}

// Jest loads this module once per test file: clean up after each file, whatever its tests did.
if (typeof afterAll === 'function') afterAll(removeTempDirs);

export function removeDir(dir: string | undefined): void {
  if (!dir) return;
  fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

export interface TestAppOptions {
  /** Stacks to bundle for real. @default [] (no bundling) */
  readonly bundlingStacks?: string[];
  /** Throw from `app.synth()` when a validation plugin (cdk-nag) fails. @default false */
  readonly failOnValidationErrors?: boolean;
  /** Extra context, applied last. */
  readonly context?: Record<string, unknown>;
  /** Cloud assembly directory. @default - a new temporary directory */
  readonly outdir?: string;
}

/** An App with cdk.json's context, bundling skipped and a temporary outdir. */
export function newTestApp(options: TestAppOptions = {}): { app: App; outdir: string } {
  const outdir = options.outdir ?? makeTempDir('cdk-out');
  const app = new App({
    outdir,
    context: {
      ...cdkJsonContext(),
      [BUNDLING_STACKS_CONTEXT]: options.bundlingStacks ?? [],
      [FAIL_ON_VALIDATION_ERRORS_CONTEXT]: options.failOnValidationErrors ?? false,
      ...(options.context ?? {}),
    },
  });
  return { app, outdir };
}

export interface SynthOptions extends TestAppOptions {
  /** @default DEFAULT_CONFIG from bin/default-config.ts */
  readonly config?: DeploymentConfig;
}

export interface CellUnderTest {
  readonly region: string;
  readonly stack: RegionalRouterStack;
  readonly template: Template;
}

export interface SynthesizedApp {
  readonly app: App;
  readonly outdir: string;
  readonly stacks: RegionalRouterStack[];
  readonly templates: Template[];
  /** Stacks and templates keyed by region. */
  readonly cells: ReadonlyMap<string, CellUnderTest>;
  readonly assembly: cxapi.CloudAssembly;
  /** Removes the temporary outdir. */
  cleanup(): void;
}

/**
 * Builds the app through `buildApp` (default config unless one is given) and synthesizes it once.
 * The `Template`s come from that one synthesis (Stage.synth caches the assembly).
 */
export function synthApp(options: SynthOptions = {}): SynthesizedApp {
  const { app, outdir } = newTestApp(options);
  const stacks = buildApp(app, options.config ?? DEFAULT_CONFIG);
  const assembly = app.synth();
  const templates = stacks.map((stack) => Template.fromStack(stack));
  const cells = new Map<string, CellUnderTest>();
  stacks.forEach((stack, i) => cells.set(stack.region, { region: stack.region, stack, template: templates[i] }));
  return {
    app,
    outdir,
    stacks,
    templates,
    cells,
    assembly,
    cleanup: () => {
      // Only remove directories this helper created.
      if (!options.outdir) removeDir(outdir);
    },
  };
}

/**
 * Like `synthApp`, but NodejsFunction bundles with the local esbuild (no Docker) into a temporary
 * outdir. Bundles only the stacks listed (by stack name), or every stack when none are given.
 */
export function synthBundledApp(options: SynthOptions & { readonly stacks?: string[] } = {}): SynthesizedApp {
  return synthApp({ ...options, bundlingStacks: options.stacks ?? ['**'] });
}

/** Logical id of a construct's CloudFormation resource (the construct or its default child). */
export function logicalIdOf(construct: IConstruct): string {
  const element = construct.node.defaultChild ?? construct;
  if (!CfnElement.isCfnElement(element)) throw new Error(`${construct.node.path} has no CloudFormation resource`);
  return Stack.of(element).getLogicalId(element);
}

/** The validation report (cdk-nag and other plugins) that synthesis wrote into an outdir. */
export interface ValidationReport {
  readonly version: string;
  readonly pluginReports: PluginReport[];
}

export interface PluginReport {
  readonly pluginName: string;
  readonly conclusion: 'success' | 'failure';
  readonly violations: ReportViolation[];
  readonly suppressedViolations?: SuppressedViolation[];
}

export interface ReportViolation {
  readonly ruleName: string;
  readonly description: string;
  readonly severity?: string;
  readonly violatingConstructs?: { constructPath: string }[];
}

export interface SuppressedViolation extends ReportViolation {
  readonly acknowledgedId: string;
  readonly reason: string;
  readonly acknowledgedAt: string;
}

export function readValidationReport(outdir: string): ValidationReport {
  const file = path.join(outdir, 'validation-report.json');
  if (!fs.existsSync(file)) {
    throw new Error(`No validation-report.json in ${outdir}: no validation plugin ran during synthesis`);
  }
  return JSON.parse(fs.readFileSync(file, 'utf8')) as ValidationReport;
}

/** Environment for child processes that must not reach AWS or the internet. */
export function offlineEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    // NODE_ENV=test (set by jest) would switch a CDK app to in-memory mode, unlike a real run.
    if (key.startsWith('AWS_') || key.startsWith('CDK_') || key === 'JEST_WORKER_ID' || key === 'NODE_ENV') continue;
    env[key] = value;
  }
  return {
    ...env,
    AWS_EC2_METADATA_DISABLED: 'true',
    CDK_DISABLE_VERSION_CHECK: 'true',
    CDK_DISABLE_CLI_TELEMETRY: 'true',
    // No credentials, no config files: nothing to look up.
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_CONFIG_FILE: '/dev/null',
    ...extra,
  };
}

/** A local binary from node_modules/.bin (what `npx <name>` runs, without npm in between). */
export function localBin(name: string): string {
  const bin = path.join(REPO_ROOT, 'node_modules', '.bin', name);
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: run npm ci`);
  return bin;
}
