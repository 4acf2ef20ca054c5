import { Annotations, Lazy, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct, IConstruct } from 'constructs';

/** A KMS key watched by the guards (identifiers only). */
export interface WatchedKey {
  readonly keyArn: string;
  readonly keyId: string;
}

export interface AccountGuardsProps {
  /** Keys whose use only the cell's own roles may obtain: any new grant on them is reported. */
  readonly secretKeys: WatchedKey[];
  /** Keys that AWS services legitimately grant on (storage): only grants not made by a service are reported. */
  readonly storageKeys: WatchedKey[];
  /** The cell's functions: code, configuration and permission changes are reported. */
  readonly functions: lambda.IFunction[];
  /** The cell's function roles: policy, trust and boundary changes are reported. */
  readonly roles: iam.IRole[];
  /** Where every matched event goes. */
  readonly alarmTopic: sns.ITopic;
  /**
   * Tables that must never be copied (the erasure keys of crypto-shredding): a change of their
   * resource policy, PITR, streams or replicas, or a backup attempt, is reported.
   * @default - none
   */
  readonly noCopyTables?: { readonly tableName: string; readonly tableArn: string }[];
  /**
   * A scope whose KMS keys, functions and roles are watched too, found at synth time, so that
   * resources added to the cell later (or by other constructs in it) are covered. Its keys other
   * than `storageKeys` count as secret keys.
   * @default - only the listed resources
   */
  readonly watchScope?: IConstruct;
}

const CLOUDTRAIL = 'AWS API Call via CloudTrail';

/** KMS calls that change who can use a key, or whether it still exists. */
export const KEY_CHANGE_EVENTS = [
  'PutKeyPolicy',
  'DisableKey',
  'ScheduleKeyDeletion',
  'DisableKeyRotation',
  'ReplicateKey',
  'UpdatePrimaryRegion',
  'ImportKeyMaterial',
  'DeleteImportedKeyMaterial',
] as const;

/** Lambda calls (CloudTrail names carry API-version suffixes, hence prefixes) that change code, configuration or who may invoke. */
export const FUNCTION_CHANGE_EVENT_PREFIXES = [
  'UpdateFunctionCode',
  'UpdateFunctionConfiguration',
  'AddPermission',
  'RemovePermission',
  'PutFunctionConcurrency',
  'DeleteFunctionConcurrency',
  'PutFunctionCodeSigningConfig',
  'DeleteFunctionCodeSigningConfig',
  'CreateFunctionUrlConfig',
  'UpdateFunctionUrlConfig',
  'CreateAlias',
  'UpdateAlias',
  'DeleteFunction',
] as const;

/** DynamoDB calls, named by table, that could let a copy of a no-copy table exist (or try to). */
export const NO_COPY_TABLE_EVENTS = ['UpdateContinuousBackups', 'CreateBackup', 'UpdateTable', 'DeleteTable', 'ExportTableToPointInTime'] as const;

/** DynamoDB calls, named by ARN, that loosen or remove the refusal of copies. */
export const NO_COPY_TABLE_POLICY_EVENTS = ['PutResourcePolicy', 'DeleteResourcePolicy'] as const;

/** IAM calls that change what a role may do or who may assume it. */
export const ROLE_CHANGE_EVENTS = [
  'PutRolePolicy',
  'DeleteRolePolicy',
  'AttachRolePolicy',
  'DetachRolePolicy',
  'UpdateAssumeRolePolicy',
  'PutRolePermissionsBoundary',
  'DeleteRolePermissionsBoundary',
  'UpdateRole',
  'DeleteRole',
] as const;

/**
 * Account-level guards: EventBridge rules on CloudTrail management events that could hand out
 * the cell's keys or change its code, each sent to the alarm topic. Needs a CloudTrail trail
 * recording management events in the cell's region (README: account-level guards).
 *
 * IAM is a global service whose CloudTrail events reach EventBridge only in us-east-1, so the
 * role rule is created here only for a us-east-1 cell; elsewhere compose `RoleChangeGuard` in a
 * us-east-1 stack (a warning says so at synth).
 */
export class AccountGuards extends Construct {
  public readonly rules: events.Rule[] = [];
  /** The role-change rule, when the cell is in us-east-1. */
  public readonly roleChanges?: RoleChangeGuard;

  constructor(scope: Construct, id: string, props: AccountGuardsProps) {
    super(scope, id);
    const target = new targets.SnsTopic(props.alarmTopic);
    const ids = (keys: WatchedKey[]) => keys.flatMap((k) => [k.keyId, k.keyArn]);
    // Resources under the watched scope, read when the template is rendered.
    const found = <T>(type: abstract new (...args: never[]) => T): T[] => (props.watchScope ? props.watchScope.node.findAll().filter((c): c is IConstruct & T => c instanceof type) : []);
    const storageArns = new Set(props.storageKeys.map((k) => k.keyArn));
    const secretKeys = (): WatchedKey[] => unique([...props.secretKeys, ...found(kms.Key).filter((k) => !storageArns.has(k.keyArn))]);
    const functions = (): lambda.IFunction[] => unique([...props.functions, ...found(lambda.Function)]);
    const lazy = <T>(produce: () => T[]): T[] => Lazy.any({ produce }) as unknown as T[];
    const add = (ruleId: string, description: string, eventPattern: events.EventPattern) =>
      this.rules.push(new events.Rule(this, ruleId, { description, eventPattern, targets: [target] }));

    add('KeyChanges', 'sovereign-router: policy, state or deletion change of a cell key', {
      source: ['aws.kms'],
      detailType: [CLOUDTRAIL],
      detail: { eventSource: ['kms.amazonaws.com'], eventName: [...KEY_CHANGE_EVENTS], requestParameters: { keyId: lazy(() => ids([...secretKeys(), ...props.storageKeys])) } },
    });
    add('SecretKeyGrants', 'sovereign-router: a grant on a key that protects tenant secrets (no one should create one)', {
      source: ['aws.kms'],
      detailType: [CLOUDTRAIL],
      detail: { eventSource: ['kms.amazonaws.com'], eventName: ['CreateGrant'], requestParameters: { keyId: lazy(() => ids(secretKeys())) } },
    });
    add('StorageKeyGrants', 'sovereign-router: a grant on the storage key not made by DynamoDB or Secrets Manager for their resources', {
      source: ['aws.kms'],
      detailType: [CLOUDTRAIL],
      detail: {
        eventSource: ['kms.amazonaws.com'],
        eventName: ['CreateGrant'],
        requestParameters: { keyId: ids(props.storageKeys) },
        userIdentity: { invokedBy: [{ exists: false }] },
      },
    });
    add('FunctionChanges', 'sovereign-router: code, configuration or permission change of a cell function', {
      source: ['aws.lambda'],
      detailType: [CLOUDTRAIL],
      detail: {
        eventSource: ['lambda.amazonaws.com'],
        eventName: FUNCTION_CHANGE_EVENT_PREFIXES.map((p) => ({ prefix: p })),
        // Callers may pass a name, a partial or full ARN, with or without a qualifier.
        requestParameters: { functionName: lazy(() => functions().flatMap((f) => [{ suffix: f.functionName }, { wildcard: `*${f.functionName}:*` }])) },
      },
    });

    const noCopy = props.noCopyTables ?? [];
    if (noCopy.length > 0) {
      add('NoCopyTableChanges', 'sovereign-router: backup, PITR, stream or replica change of the erasure-key table (crypto-shredding)', {
        source: ['aws.dynamodb'],
        detailType: [CLOUDTRAIL],
        detail: { eventSource: ['dynamodb.amazonaws.com'], eventName: [...NO_COPY_TABLE_EVENTS], requestParameters: { tableName: noCopy.map((t) => t.tableName) } },
      });
      add('NoCopyTablePolicy', 'sovereign-router: the erasure-key table resource policy (which refuses every copy) was replaced or removed', {
        source: ['aws.dynamodb'],
        detailType: [CLOUDTRAIL],
        detail: { eventSource: ['dynamodb.amazonaws.com'], eventName: [...NO_COPY_TABLE_POLICY_EVENTS], requestParameters: { resourceArn: noCopy.map((t) => t.tableArn) } },
      });
    }

    if (Stack.of(this).region === 'us-east-1') {
      this.roleChanges = new RoleChangeGuard(this, 'RoleChanges', { roles: props.roles, alarmTopic: props.alarmTopic, watchScope: props.watchScope });
      this.rules.push(this.roleChanges.rule);
    } else {
      Annotations.of(this).addWarningV2(
        'sovereign-router:role-guard-us-east-1',
        `IAM events reach EventBridge only in us-east-1: policy and trust changes of this cell's roles are not watched from ${Stack.of(this).region}. ` +
          'Compose RoleChangeGuard in a us-east-1 stack (README: account-level guards).',
      );
    }
  }
}

export interface RoleChangeGuardProps {
  /** Roles whose policy, trust or permissions-boundary changes are reported. */
  readonly roles: iam.IRole[];
  /** Where matched events go. */
  readonly alarmTopic: sns.ITopic;
  /**
   * A scope whose roles are watched too, found at synth time.
   * @default - only the listed roles
   */
  readonly watchScope?: IConstruct;
}

/**
 * An EventBridge rule on IAM policy, trust and boundary changes of the given roles. IAM events
 * arrive only in us-east-1, so this construct must live in a us-east-1 stack.
 */
export class RoleChangeGuard extends Construct {
  public readonly rule: events.Rule;

  constructor(scope: Construct, id: string, props: RoleChangeGuardProps) {
    super(scope, id);
    const region = Stack.of(this).region;
    if (region !== 'us-east-1') {
      throw new Error(`RoleChangeGuard '${this.node.path}' must be in us-east-1 (IAM events reach EventBridge only there), got '${region}'`);
    }
    if (props.roles.length === 0 && !props.watchScope) throw new Error('RoleChangeGuard needs at least one role');
    const roles = () => unique([...props.roles, ...(props.watchScope ? props.watchScope.node.findAll().filter((c): c is iam.Role => c instanceof iam.Role) : [])]);
    this.rule = new events.Rule(this, 'Rule', {
      description: 'sovereign-router: policy, trust or boundary change of a cell role',
      eventPattern: {
        source: ['aws.iam'],
        detailType: [CLOUDTRAIL],
        detail: { eventSource: ['iam.amazonaws.com'], eventName: [...ROLE_CHANGE_EVENTS], requestParameters: { roleName: Lazy.list({ produce: () => roles().map((r) => r.roleName) }) } },
      },
      targets: [new targets.SnsTopic(props.alarmTopic)],
    });
  }
}

function unique<T>(items: T[]): T[] {
  return [...new Set(items)];
}
