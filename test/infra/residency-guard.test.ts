/**
 * ResidencyGuard: synthesis reports an error, naming the resource, for anything in a regional
 * stack that would move data or key material out of its region.
 */
import { Aspects, Stack } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { IConstruct } from 'constructs';
import { buildApp } from '../../bin/build-app';
import { DEFAULT_CONFIG } from '../../bin/default-config';
import { ResidencyGuard } from '../../lib';
import { newTestApp, synthApp } from './support/synth';

const REGION = 'eu-central-1';
const OTHER_REGION_QUEUE = 'arn:aws:sqs:us-east-1:111122223333:audit-events';
const SAME_REGION_QUEUE = 'arn:aws:sqs:eu-central-1:111122223333:audit-events';


/** A guarded stack in its own app; `build` adds the resource under test and returns it. */
function guardedStack(build: (stack: Stack) => IConstruct, env: { region?: string } = { region: REGION }): { stack: Stack; target: IConstruct } {
  // Temporary outdirs are removed after the file by support/synth.
  const { app } = newTestApp();
  const stack = new Stack(app, 'Guarded', { env });
  const target = build(stack);
  Aspects.of(stack).add(new ResidencyGuard());
  return { stack, target };
}

/** The construct path that the guard reports: the CloudFormation resource itself. */
function resourcePath(target: IConstruct): string {
  return `/${(target.node.defaultChild ?? target).node.path}`;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Asserts an error on the resource whose message names the resource path and the reason. */
function expectResidencyError(stack: Stack, path: string, reason: RegExp): void {
  const named = Match.stringLikeRegexp(`^Residency violation in ${REGION}: ${escape(path.slice(1))} \\(.*${reason.source}`);
  Annotations.fromStack(stack).hasError(path, named);
}

const partitionKey = { name: 'pk', type: dynamodb.AttributeType.STRING };

describe('ResidencyGuard reports', () => {
  test('a multi-Region KMS key', () => {
    const { stack, target } = guardedStack((s) => new kms.Key(s, 'MultiRegionKey', { multiRegion: true, enableKeyRotation: true }));
    expectResidencyError(stack, resourcePath(target), /AWS::KMS::Key\): a multi-Region KMS key/);
  });

  test('a KMS replica key', () => {
    const { stack, target } = guardedStack(
      (s) =>
        new kms.CfnReplicaKey(s, 'ReplicaKey', {
          keyPolicy: { Version: '2012-10-17', Statement: [] },
          primaryKeyArn: 'arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab',
        }),
    );
    expectResidencyError(stack, resourcePath(target), /AWS::KMS::ReplicaKey\): a KMS replica key copies key material/);
    // The primary key's ARN in another region is named as well.
    expectResidencyError(stack, resourcePath(target), /references us-east-1 \(:kms:us-east-1:/);
  });

  test('a TableV2 (global table) with a replica', () => {
    const { stack, target } = guardedStack((s) => new dynamodb.TableV2(s, 'Global', { partitionKey, replicas: [{ region: 'eu-west-1' }] }));
    expectResidencyError(stack, resourcePath(target), /AWS::DynamoDB::GlobalTable\): a global table replicates items/);
  });

  test('a CfnGlobalTable with a replica', () => {
    const { stack, target } = guardedStack(
      (s) =>
        new dynamodb.CfnGlobalTable(s, 'CfnGlobal', {
          attributeDefinitions: [{ attributeName: 'pk', attributeType: 'S' }],
          keySchema: [{ attributeName: 'pk', keyType: 'HASH' }],
          billingMode: 'PAY_PER_REQUEST',
          replicas: [{ region: REGION }, { region: 'us-west-2' }],
        }),
    );
    expectResidencyError(stack, resourcePath(target), /AWS::DynamoDB::GlobalTable\)/);
  });

  test('a Table with replicationRegions (custom-resource replicas)', () => {
    let table!: dynamodb.Table;
    const { stack } = guardedStack((s) => {
      table = new dynamodb.Table(s, 'Replicated', { partitionKey, replicationRegions: ['eu-west-1'] });
      return table;
    });
    const replica = table.node.findChild('Replicaeu-west-1');
    expectResidencyError(stack, resourcePath(replica), /Custom::DynamoDBReplica\): a table replica copies items/);
  });

  test('a Secret with replicaRegions', () => {
    const { stack, target } = guardedStack((s) => new secretsmanager.Secret(s, 'Replicated', { replicaRegions: [{ region: 'us-east-1' }] }));
    expectResidencyError(stack, resourcePath(target), /AWS::SecretsManager::Secret\): property ReplicaRegions sends data out/);
  });

  test('an SNS subscription to a queue in another region', () => {
    const { stack, target } = guardedStack((s) => {
      const topic = new sns.Topic(s, 'Events', { masterKey: new kms.Key(s, 'TopicKey', { enableKeyRotation: true }) });
      return new sns.Subscription(s, 'CrossRegion', { topic, endpoint: OTHER_REGION_QUEUE, protocol: sns.SubscriptionProtocol.SQS });
    });
    expectResidencyError(stack, resourcePath(target), /AWS::SNS::Subscription\): it references us-east-1 \(:sqs:us-east-1:/);
  });

  test('a Lambda environment variable holding an ARN of another region', () => {
    const { stack, target } = guardedStack(
      (s) =>
        new lambda.Function(s, 'Exporter', {
          runtime: lambda.Runtime.NODEJS_22_X,
          handler: 'index.handler',
          code: lambda.Code.fromInline('exports.handler = async () => {};'),
          environment: { EXPORT_QUEUE_ARN: OTHER_REGION_QUEUE },
        }),
    );
    expectResidencyError(stack, resourcePath(target), /AWS::Lambda::Function\): it references us-east-1/);
  });

  test('any resource of a stack without a concrete region', () => {
    const { stack, target } = guardedStack((s) => new sqs.Queue(s, 'Queue'), {});
    Annotations.fromStack(stack).hasError(resourcePath(target), Match.stringLikeRegexp('is in a stack without a concrete region; set env.region'));
  });
});

describe('ResidencyGuard sees ARNs split around the partition token', () => {
  // Stack.formatArn renders Fn::Join ["arn:", {"Ref":"AWS::Partition"}, ":sqs:us-east-1:..."].
  test('a cross-region ARN built with Stack.formatArn is reported', () => {
    const { stack, target } = guardedStack((s) => {
      const topic = new sns.Topic(s, 'Events');
      const endpoint = s.formatArn({ service: 'sqs', region: 'us-east-1', account: '111122223333', resource: 'audit-events' });
      return new sns.Subscription(s, 'CrossRegion', { topic, endpoint, protocol: sns.SubscriptionProtocol.SQS });
    });
    expectResidencyError(stack, resourcePath(target), /references us-east-1/);
  });
});

describe('ResidencyGuard passes', () => {
  test('same-region references and single-Region resources (control)', () => {
    const { stack } = guardedStack((s) => {
      new kms.Key(s, 'SingleRegionKey', { enableKeyRotation: true });
      new dynamodb.Table(s, 'Regional', { partitionKey });
      new secretsmanager.Secret(s, 'Regional Secret');
      const topic = new sns.Topic(s, 'Events');
      new sns.Subscription(s, 'SameRegion', { topic, endpoint: SAME_REGION_QUEUE, protocol: sns.SubscriptionProtocol.SQS });
      return new lambda.Function(s, 'Local', {
        runtime: lambda.Runtime.NODEJS_22_X,
        handler: 'index.handler',
        code: lambda.Code.fromInline('exports.handler = async () => {};'),
        environment: { EXPORT_QUEUE_ARN: SAME_REGION_QUEUE },
      });
    });
    Annotations.fromStack(stack).hasNoError('*', Match.anyValue());
  });

  test('the real RegionalRouterStacks of the default app', () => {
    const synth = synthApp();
    try {
      expect(synth.stacks).toHaveLength(2);
      for (const stack of synth.stacks) {
        const errors = synth.assembly.getStackArtifact(stack.artifactId).messages.filter((m) => m.level === 'error');
        expect(errors.map((m) => `${m.id}: ${JSON.stringify(m.entry.data)}`)).toEqual([]);
        Annotations.fromStack(stack).hasNoError('*', Match.anyValue());
      }
    } finally {
      synth.cleanup();
    }
  });
});

describe('the full app refuses a cross-region resource in a cell', () => {
  test('a multi-Region key added to a RegionalRouterStack is reported as an error in the assembly', () => {
    const { app } = newTestApp();
    const stacks = buildApp(app, DEFAULT_CONFIG);
    const eu = stacks.find((s) => s.region === REGION)!;
    const smuggled = new kms.Key(eu, 'SmuggledKey', { multiRegion: true, enableKeyRotation: true });
    const assembly = app.synth();

    // Error annotations land in the stack artifact's messages; the CLI stops on them ("Found errors").
    const errors = assembly.getStackArtifact(eu.artifactId).messages.filter((m) => m.level === 'error');
    expect(errors.map((m) => m.id)).toEqual([resourcePath(smuggled)]);
    expect(String(errors[0].entry.data)).toMatch(/Residency violation in eu-central-1: .*SmuggledKey\/Resource \(AWS::KMS::Key\): a multi-Region KMS key/);
    Annotations.fromStack(eu).hasError(resourcePath(smuggled), Match.stringLikeRegexp('multi-Region KMS key'));
    // The other cell is unaffected.
    const us = stacks.find((s) => s.region !== REGION)!;
    expect(assembly.getStackArtifact(us.artifactId).messages.filter((m) => m.level === 'error')).toEqual([]);
  });
});
