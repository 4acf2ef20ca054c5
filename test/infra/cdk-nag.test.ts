/**
 * cdk-nag (v3, AwsSolutions pack) through aws-cdk-lib's validation framework: buildApp registers
 * the plugin, synthesis fails on any unacknowledged finding, and every acknowledgement in the cell
 * carries a real reason.
 */
import { App, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { IConstruct } from 'constructs';
import { buildApp } from '../../bin/build-app';
import { DEFAULT_CONFIG } from '../../bin/default-config';
import { RegionalRouterStack } from '../../lib';
import { PluginReport, ValidationReport, newTestApp, readValidationReport, removeDir } from './support/synth';

const NAG_PLUGIN = 'AwsSolutions';

interface Acknowledgement {
  path: string;
  id: string;
  reason: string;
}

/** Every `Validations.of(x).acknowledge()` under a scope, from construct metadata. */
function acknowledgementsUnder(scope: IConstruct): Acknowledgement[] {
  const found: Acknowledgement[] = [];
  for (const construct of scope.node.findAll()) {
    for (const entry of construct.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
        found.push({ path: construct.node.path, id, reason });
      }
    }
  }
  return found;
}

/** A reason a reviewer can check: a sentence that explains, not a placeholder. */
function reasonProblems(reason: string): string[] {
  const problems: string[] = [];
  const words = reason.trim().split(/\s+/).filter((w) => /[a-z]/i.test(w));
  if (reason.trim().length < 40) problems.push('shorter than 40 characters');
  if (new Set(words.map((w) => w.toLowerCase())).size < 6) problems.push('fewer than 6 distinct words');
  if (/^(todo|tbd|fixme|n\/?a|none|ok|okay|suppress(ed)?|ignore(d)?|false positive|not needed|by design)\.?$/i.test(reason.trim())) {
    problems.push('placeholder');
  }
  if (/\b(todo|tbd|fixme|xxx)\b/i.test(reason)) problems.push('contains a to-do marker');
  return problems;
}

/** `AwsSolutions::AwsSolutions-IAM5[...]` and `AwsSolutions-IAM5[...]` acknowledge the same finding. */
function ruleId(id: string): string {
  return id.replace(/^[A-Za-z-]+::/, '');
}

function nagReport(report: ValidationReport): PluginReport {
  const nag = report.pluginReports.find((r) => r.pluginName === NAG_PLUGIN);
  if (!nag) throw new Error(`No '${NAG_PLUGIN}' plugin report in ${JSON.stringify(report.pluginReports.map((r) => r.pluginName))}`);
  return nag;
}

describe('cdk-nag AwsSolutions on the default app', () => {
  let app: App;
  let outdir: string;
  let stacks: RegionalRouterStack[];
  let synthError: unknown;
  let report: ValidationReport;

  beforeAll(() => {
    // Validation failures throw, as they do for `cdk synth`.
    ({ app, outdir } = newTestApp({ failOnValidationErrors: true }));
    stacks = buildApp(app, DEFAULT_CONFIG);
    try {
      app.synth();
    } catch (err) {
      synthError = err;
    }
    report = readValidationReport(outdir);
  });
  afterAll(() => removeDir(outdir));

  test('synthesis does not throw', () => {
    // The error message is cdk-nag's full report: show it rather than a bare "threw".
    expect(synthError === undefined ? 'no error' : String((synthError as Error).message)).toBe('no error');
  });

  test('the validation report has no unacknowledged violation', () => {
    const nag = nagReport(report);
    const open = nag.violations.map((v) => `${v.ruleName} at ${(v.violatingConstructs ?? []).map((c) => c.constructPath).join(', ')}`);
    expect(open).toEqual([]);
    expect(nag.conclusion).toBe('success');
    // Nothing else (e.g. the built-in CloudFormation validation) reports an error either.
    const otherErrors = report.pluginReports
      .filter((r) => r.pluginName !== NAG_PLUGIN)
      .flatMap((r) => r.violations.filter((v) => v.severity === 'error' || v.severity === 'fatal').map((v) => `${r.pluginName}: ${v.ruleName}`));
    expect(otherErrors).toEqual([]);
  });

  test('nag really evaluated both cells (its acknowledged findings are in the report)', () => {
    const suppressed = nagReport(report).suppressedViolations ?? [];
    const paths = suppressed.flatMap((s) => (s.violatingConstructs ?? []).map((c) => c.constructPath));
    for (const stack of stacks) {
      expect(paths.some((p) => p.startsWith(`${stack.stackName}/Cell/`))).toBe(true);
    }
  });

  test('every acknowledgement in the cells carries a non-trivial reason', () => {
    const acks = stacks.flatMap((stack) => acknowledgementsUnder(stack));
    expect(acks.length).toBeGreaterThan(0);
    const weak = acks.map((a) => ({ ...a, problems: reasonProblems(a.reason) })).filter((a) => a.problems.length > 0);
    expect(weak).toEqual([]);
    // Reasons are rendered into the report next to the finding they suppress.
    for (const s of nagReport(report).suppressedViolations ?? []) {
      expect(reasonProblems(s.reason)).toEqual([]);
    }
  });

  test('every acknowledgement suppresses a real finding (no stale acknowledgements)', () => {
    const used = new Set((nagReport(report).suppressedViolations ?? []).map((s) => `${s.acknowledgedAt} ${ruleId(s.acknowledgedId)}`));
    const acks = stacks.flatMap((stack) => acknowledgementsUnder(stack)).filter((a) => ruleId(a.id).startsWith(`${NAG_PLUGIN}-`));
    expect(acks.length).toBeGreaterThan(0);
    expect(acks.filter((a) => !used.has(`${a.path} ${ruleId(a.id)}`)).map((a) => `${a.path} ${a.id}`)).toEqual([]);
  });

  test('acknowledgements name a single rule (or finding), never a whole pack or a stack-wide blanket', () => {
    for (const stack of stacks) {
      const acks = acknowledgementsUnder(stack);
      for (const ack of acks) {
        expect(ack.id).toMatch(/^(AwsSolutions::)?AwsSolutions-[A-Z]+\d+(\[.+\])?$/);
        expect(ack.path).not.toBe(stack.node.path);
      }
    }
  });
});

describe('cdk-nag negative control', () => {
  /** An app with unencrypted, unprotected resources; nag is registered exactly as the README shows. */
  function insecureApp(acknowledge?: (table: dynamodb.CfnTable, queue: sqs.Queue) => void) {
    const { app, outdir } = newTestApp({ failOnValidationErrors: true });
    const stack = new Stack(app, 'Insecure', { env: { region: 'eu-central-1' } });
    const table = new dynamodb.CfnTable(stack, 'NoPitrTable', {
      keySchema: [{ attributeName: 'pk', keyType: 'HASH' }],
      attributeDefinitions: [{ attributeName: 'pk', attributeType: 'S' }],
      billingMode: 'PAY_PER_REQUEST',
    });
    table.applyRemovalPolicy(RemovalPolicy.DESTROY);
    const queue = new sqs.Queue(stack, 'PlainQueue', { encryption: sqs.QueueEncryption.UNENCRYPTED });
    acknowledge?.(table, queue);
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    return { app, outdir };
  }

  test('an unacknowledged unencrypted queue and a table without PITR make synth throw', () => {
    const { app, outdir } = insecureApp();
    try {
      expect(() => app.synth()).toThrow(/AwsSolutions-DDB3/);
      const nag = nagReport(readValidationReport(outdir));
      expect(nag.conclusion).toBe('failure');
      expect(nag.violations.map((v) => v.ruleName)).toEqual(expect.arrayContaining(['AwsSolutions-DDB3', 'AwsSolutions-SQS2', 'AwsSolutions-SQS4']));
      const paths = nag.violations.flatMap((v) => (v.violatingConstructs ?? []).map((c) => c.constructPath));
      expect(paths).toEqual(expect.arrayContaining(['Insecure/NoPitrTable', 'Insecure/PlainQueue/Resource']));
    } finally {
      removeDir(outdir);
    }
  });

  test('acknowledging one finding removes exactly that one', () => {
    const { app, outdir } = insecureApp((table) =>
      Validations.of(table).acknowledge({ id: 'AwsSolutions::AwsSolutions-DDB3', reason: 'Negative control: this throwaway table needs no point-in-time recovery.' }),
    );
    try {
      expect(() => app.synth()).toThrow(/AwsSolutions-SQS4/);
      const nag = nagReport(readValidationReport(outdir));
      expect(nag.violations.map((v) => v.ruleName)).not.toContain('AwsSolutions-DDB3');
      expect(nag.violations.map((v) => v.ruleName)).toContain('AwsSolutions-SQS4');
      expect(nag.suppressedViolations?.map((s) => s.ruleName)).toEqual(['AwsSolutions-DDB3']);
    } finally {
      removeDir(outdir);
    }
  });
});
