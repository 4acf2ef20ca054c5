import * as fs from 'node:fs';
import * as path from 'node:path';
import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ESBUILD_EXTERNALS, ESBUILD_MAIN_FIELDS, ESBUILD_TARGET, esbuildAliases, HandlerName } from './bundle-options';
import { LOG_WRITE_ACTIONS, XRAY_WRITE_ACTIONS } from './iam-actions';

/** esbuild settings of NodejsFunction (source checkouts); scripts/build-bundles.ts uses the same. */
export const BUNDLING: nodejs.BundlingOptions = {
  minify: true,
  sourceMap: true,
  sourcesContent: false,
  target: ESBUILD_TARGET,
  format: nodejs.OutputFormat.CJS,
  externalModules: [...ESBUILD_EXTERNALS],
  mainFields: [...ESBUILD_MAIN_FIELDS],
  esbuildArgs: Object.fromEntries(Object.entries(esbuildAliases()).map(([from, to]) => [`--alias:${from}`, to])),
};

export interface CellFunctionProps {
  /** Handler file name under lambda/handlers, without extension. */
  readonly handler: HandlerName;
  readonly description: string;
  readonly environment: Record<string, string>;
  readonly logKey: kms.IKey;
  readonly logRetention: logs.RetentionDays;
  readonly memorySize: number;
  /** @default - no code signing */
  readonly codeSigningConfig?: lambda.ICodeSigningConfig;
  /** @default - no reserved concurrency */
  readonly reservedConcurrency?: number;
  readonly timeout: Duration;
}

/** Resolves a handler entry for both the TypeScript sources and the compiled package. */
export function handlerEntry(handler: string): string {
  const ts = path.join(__dirname, '..', '..', 'lambda', 'handlers', `${handler}.ts`);
  return fs.existsSync(ts) ? ts : ts.replace(/\.ts$/, '.js');
}

/**
 * The bundle built with the package (`npm run build` writes dist/bundles/<handler>/index.js next
 * to dist/lib), or undefined in a source checkout, where NodejsFunction bundles with the local
 * esbuild instead. A consumer of the published package therefore needs neither esbuild nor Docker.
 */
export function prebuiltBundle(handler: string): string | undefined {
  const dir = path.join(__dirname, '..', '..', 'bundles', handler);
  return fs.existsSync(path.join(dir, 'index.js')) ? dir : undefined;
}

/**
 * A function with its own role (no managed policies), its own encrypted log group with
 * retention, active tracing, arm64 and Node.js 22.
 */
export class CellFunction extends Construct {
  public readonly function: lambda.Function;
  public readonly role: iam.Role;
  public readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: CellFunctionProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention,
      encryptionKey: props.logKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `sovereign-router ${props.handler} function in ${Stack.of(this).region}`,
    });
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: [...LOG_WRITE_ACTIONS],
        resources: [this.logGroup.logGroupArn, `${this.logGroup.logGroupArn}:log-stream:*`],
      }),
    );
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: [...XRAY_WRITE_ACTIONS], resources: ['*'] }));

    const common = {
      description: props.description,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize,
      reservedConcurrentExecutions: props.reservedConcurrency,
      codeSigningConfig: props.codeSigningConfig,
      timeout: props.timeout,
      role: this.role,
      logGroup: this.logGroup,
      tracing: lambda.Tracing.ACTIVE,
      environment: { NODE_OPTIONS: '--enable-source-maps', ...props.environment },
    } satisfies Partial<lambda.FunctionProps>;
    const bundle = prebuiltBundle(props.handler);
    this.function = bundle
      ? new lambda.Function(this, 'Function', { ...common, code: lambda.Code.fromAsset(bundle), handler: 'index.handler' })
      : new nodejs.NodejsFunction(this, 'Function', { ...common, entry: handlerEntry(props.handler), handler: 'handler', bundling: BUNDLING });

    Validations.of(this.role).acknowledge(
      {
        id: 'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
        reason: 'Only xray:PutTraceSegments and xray:PutTelemetryRecords use Resource *: X-Ray does not support resource-level permissions for them.',
      },
      {
        id: `AwsSolutions::AwsSolutions-IAM5[Resource::<${Stack.of(this).getLogicalId(this.logGroup.node.defaultChild as logs.CfnLogGroup)}.Arn>:log-stream:*]`,
        reason: 'Log streams are created by the Lambda runtime with generated names; the wildcard is limited to this function\'s own log group.',
      },
    );
    Validations.of(this.function).acknowledge({
      id: 'AwsSolutions::AwsSolutions-L1',
      reason: 'The runtime is pinned to Node.js 22 on purpose (DESIGN: Lambda Node.js 22); upgrades are deliberate, tested changes.',
    });
  }
}
