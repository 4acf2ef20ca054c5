import { Duration, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { ENCRYPTION_CONTEXT_KEYS } from '../lambda/core/canonical';
import {
  KEY_ADMIN_ACTIONS,
  LOGS_SERVICE_KEY_ACTIONS,
  ROOT_KEY_OPEN_ACTIONS,
  ROOT_KEY_SEAL_ACTIONS,
  STORAGE_KEY_GRANT_ACTIONS,
  STORAGE_KEY_USE_ACTIONS,
} from './private/iam-actions';

/** Value of the `app` encryption-context pair on every data key. */
export const APP_CONTEXT = 'sovereign-router';

export interface KeyHierarchyProps {
  /**
   * Principals that administer both keys. They can manage the keys (rotate, disable, schedule
   * deletion, change the policy) but hold no cryptographic action on them.
   * @default - the account root, which delegates administration (and nothing else) to IAM
   */
  readonly keyAdmins?: iam.IPrincipal[];
  /**
   * What happens to the keys when the stack is deleted. Sealed secrets die with the root key.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Waiting period before a scheduled key deletion takes effect.
   * @default Duration.days(30)
   */
  readonly pendingWindow?: Duration;
}

/** AWS services that may use the storage key on a principal's behalf. */
export type StorageService = 'dynamodb' | 'secretsmanager';
const STORAGE_SERVICES: readonly StorageService[] = ['dynamodb', 'secretsmanager'];

/**
 * The regional key hierarchy: a root key that wraps the data keys of sealed tenant secrets, and
 * a separate storage key for tables, the pepper secret and log groups, so that access to stored
 * data never implies the ability to open tenant secrets.
 */
export class KeyHierarchy extends Construct {
  /** Single-Region root key. Cryptographic use only through `grantSealSecrets` / `grantOpenSecrets`. */
  public readonly rootKey: kms.IKey;
  /** Encrypts tables, the pepper secret and log groups at rest. */
  public readonly storageKey: kms.IKey;
  /** The cell's region (concrete), bound into every root-key grant. */
  public readonly region: string;

  private readonly rootKeyResource: kms.Key;
  private readonly storageKeyResource: kms.Key;
  private rootGrantCount = 0;

  constructor(scope: Construct, id: string, props: KeyHierarchyProps = {}) {
    super(scope, id);
    const stack = Stack.of(this);
    if (Token.isUnresolved(stack.region)) {
      throw new Error(`KeyHierarchy '${this.node.path}' needs a stack with a concrete region (env.region); a cell is bound to one region.`);
    }
    if (props.keyAdmins !== undefined && props.keyAdmins.length === 0) {
      throw new Error('KeyHierarchyProps.keyAdmins must name at least one administrator when given.');
    }
    this.region = stack.region;
    const admins = props.keyAdmins ?? [new iam.AccountRootPrincipal()];
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const pendingWindow = props.pendingWindow ?? Duration.days(30);

    // An explicit policy: no `kms:*` for the account root, so IAM alone can never grant Decrypt.
    const adminStatement = new iam.PolicyStatement({
      sid: 'KeyAdministrationWithoutUse',
      principals: admins,
      actions: [...KEY_ADMIN_ACTIONS],
      resources: ['*'],
    });

    this.rootKeyResource = new kms.Key(this, 'RootKey', {
      description: `sovereign-router root key for tenant secrets in ${this.region} (single-Region)`,
      enableKeyRotation: true,
      multiRegion: false,
      pendingWindow,
      removalPolicy,
      policy: new iam.PolicyDocument({ statements: [adminStatement] }),
    });
    this.rootKey = this.rootKeyResource;

    this.storageKeyResource = new kms.Key(this, 'StorageKey', {
      description: `sovereign-router storage key (tables, pepper, logs) in ${this.region}`,
      enableKeyRotation: true,
      multiRegion: false,
      pendingWindow,
      removalPolicy,
      policy: new iam.PolicyDocument({ statements: [adminStatement.copy({ sid: 'StorageKeyAdministration' })] }),
    });
    this.storageKey = this.storageKeyResource;

    // Like the AWS-managed keys: the account's principals may use the storage key only through
    // DynamoDB and Secrets Manager in this region (IAM decides which principal), never directly.
    const viaCellServices = {
      StringEquals: {
        'kms:ViaService': STORAGE_SERVICES.map((s) => `${s}.${this.region}.amazonaws.com`),
        'kms:CallerAccount': stack.account,
      },
    };
    this.storageKeyResource.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'StorageUseThroughCellServicesOnly',
        principals: [new iam.AccountRootPrincipal()],
        actions: [...STORAGE_KEY_USE_ACTIONS],
        resources: ['*'],
        conditions: viaCellServices,
      }),
    );
    this.storageKeyResource.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'ServiceGrantsForCellResources',
        principals: [new iam.AccountRootPrincipal()],
        actions: [...STORAGE_KEY_GRANT_ACTIONS],
        resources: ['*'],
        conditions: { ...viaCellServices, Bool: { 'kms:GrantIsForAWSResource': 'true' } },
      }),
    );
    this.storageKeyResource.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchLogsEncryptsCellLogGroups',
        principals: [new iam.ServicePrincipal(`logs.${this.region}.amazonaws.com`)],
        actions: [...LOGS_SERVICE_KEY_ACTIONS],
        resources: ['*'],
        conditions: {
          ArnLike: {
            'kms:EncryptionContext:aws:logs:arn': stack.formatArn({
              service: 'logs',
              resource: 'log-group',
              resourceName: '*',
              arnFormat: undefined,
            }),
          },
        },
      }),
    );
  }

  /**
   * Lets the grantee seal new tenant secrets: `kms:GenerateDataKey` on the root key, only with
   * this cell's encryption context. It cannot open any stored secret.
   */
  public grantSealSecrets(grantee: iam.IGrantable): iam.Grant {
    return this.grantRootKey(grantee, 'SealSecrets', ROOT_KEY_SEAL_ACTIONS);
  }

  /**
   * Lets the grantee open sealed tenant secrets: `kms:Decrypt` on the root key, only with this
   * cell's encryption context. Give it to the data path and nothing else.
   */
  public grantOpenSecrets(grantee: iam.IGrantable): iam.Grant {
    return this.grantRootKey(grantee, 'OpenSecrets', ROOT_KEY_OPEN_ACTIONS);
  }

  /** Lets AWS services (DynamoDB, Secrets Manager) use the storage key on the grantee's behalf. */
  public grantStorageUse(grantee: iam.IGrantable, services: readonly StorageService[]): iam.Grant {
    if (services.length === 0) throw new Error('grantStorageUse needs at least one service');
    return iam.Grant.addToPrincipal({
      grantee,
      actions: [...STORAGE_KEY_USE_ACTIONS],
      resourceArns: [this.storageKey.keyArn],
      conditions: {
        StringEquals: { 'kms:ViaService': services.map((s) => `${s}.${this.region}.amazonaws.com`) },
      },
    });
  }

  /**
   * Root-key grants go into the key policy itself, naming the role, because the key policy
   * does not delegate cryptographic actions to IAM. The identity-side copy documents the
   * permission on the role too. Both carry the same encryption-context conditions.
   */
  private grantRootKey(grantee: iam.IGrantable, purpose: string, actions: readonly string[]): iam.Grant {
    const conditions = {
      StringEquals: {
        'kms:EncryptionContext:app': APP_CONTEXT,
        'kms:EncryptionContext:region': this.region,
      },
      'ForAllValues:StringEquals': { 'kms:EncryptionContextKeys': [...ENCRYPTION_CONTEXT_KEYS] },
    };
    this.rootKeyResource.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: `${purpose}${++this.rootGrantCount}`,
        principals: [grantee.grantPrincipal],
        actions: [...actions],
        resources: ['*'],
        conditions,
      }),
    );
    return iam.Grant.addToPrincipal({
      grantee,
      actions: [...actions],
      resourceArns: [this.rootKey.keyArn],
      conditions,
    });
  }
}
