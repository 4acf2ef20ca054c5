import { Annotations, Duration, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct, IConstruct } from 'constructs';
import { ENCRYPTION_CONTEXT_KEYS } from '../lambda/core/canonical';
import {
  KEY_ADMIN_ACTIONS,
  LOGS_SERVICE_KEY_ACTIONS,
  ROOT_KEY_LIFECYCLE_ACTIONS,
  ROOT_KEY_OPEN_ACTIONS,
  ROOT_KEY_REWRAP_FROM_ACTIONS,
  ROOT_KEY_REWRAP_TO_ACTIONS,
  ROOT_KEY_SEAL_ACTIONS,
  STORAGE_KEY_GRANT_ACTIONS,
  STORAGE_KEY_READ_ACTIONS,
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
  /**
   * Which root key this hierarchy creates. Raising it creates a new root key (a new logical id,
   * `RootKeyV<n>` from 2 on); the old key leaves the stack but is retained (its policy as last
   * deployed keeps the router's Decrypt and the migrator's ReEncryptFrom), so name it in
   * `previousRootKeyArns` and run the root-key migration (README, Operations).
   * @default 1
   */
  readonly rootKeyGeneration?: number;
  /**
   * Root keys this cell used before the current one: full ARNs of single-Region keys in the
   * cell's region and account. The router may still Decrypt under them and the migrator may
   * ReEncryptFrom them (identity policies here; their own key policies must allow it, which the
   * policy of a root key created by this construct does).
   * @default - none
   */
  readonly previousRootKeyArns?: string[];
}

/**
 * The root key as the public API exposes it: identifiers only. There is deliberately no
 * `grant*` method: cryptographic use of the root key is decided by the key policy, through
 * `KeyHierarchy`'s own grants, and checked at synth by `KeySeparationGuard`.
 */
export interface IRootKey extends IConstruct {
  /** ARN of the key (for encryption contexts, CloudTrail filters, IAM conditions). */
  readonly keyArn: string;
  /** Id of the key. */
  readonly keyId: string;
}

/** A principal that may open sealed secrets besides the router: an explicit, reported opt-in. */
export interface AdditionalDecryptor {
  /** Who may call `kms:Decrypt` on the root key (with the cell's encryption context). */
  readonly principal: iam.IPrincipal;
  /**
   * Why this principal must open tenant secrets. Shown in the synth warning and kept in the
   * key policy statement's construct metadata, so reviewers see it next to the grant.
   */
  readonly reason: string;
}

/** What a root-key policy statement is for, as registered by `KeyHierarchy` (read by `KeySeparationGuard`). */
export type RootKeyStatementPurpose = 'open' | 'seal' | 'additional-decryptor' | 'key-lifecycle' | 'administration' | 'migrate';

/** A root-key policy statement that `KeyHierarchy` created on purpose. */
export interface RootKeyStatement {
  readonly sid: string;
  readonly purpose: RootKeyStatementPurpose;
  /** The principal, rendered by the stack (role ARN token, account root...). */
  readonly principal: iam.IPrincipal;
  readonly reason?: string;
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
  /** Finds the hierarchy that owns a CfnKey, if any (used by `KeySeparationGuard`). */
  public static ownerOfRootKey(key: kms.CfnKey): KeyHierarchy | undefined {
    return ROOT_KEY_OWNERS.get(key);
  }

  /** Single-Region root key. Cryptographic use only through `grantSealSecrets` / `grantOpenSecrets`. */
  public readonly rootKey: IRootKey;
  /** Encrypts tables, the pepper secret and log groups at rest. */
  public readonly storageKey: kms.IKey;
  /** The cell's region (concrete), bound into every root-key grant. */
  public readonly region: string;
  /** Root keys the cell used before `rootKey` (see `KeyHierarchyProps.previousRootKeyArns`). */
  public readonly previousRootKeyArns: readonly string[];

  private readonly rootKeyResource: kms.Key;
  private readonly storageKeyResource: kms.Key;
  private rootGrantCount = 0;
  private readonly statements: RootKeyStatement[] = [];

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
    const generation = props.rootKeyGeneration ?? 1;
    if (!Number.isInteger(generation) || generation < 1 || generation > 999) {
      throw new Error(`KeyHierarchyProps.rootKeyGeneration must be an integer from 1 to 999, got ${generation}`);
    }
    this.previousRootKeyArns = checkPreviousRootKeys(props.previousRootKeyArns ?? [], this.region, stack.account);
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

    // Generation 1 keeps the original logical id, so existing cells keep their key.
    this.rootKeyResource = new kms.Key(this, generation === 1 ? 'RootKey' : `RootKeyV${generation}`, {
      description: `sovereign-router root key for tenant secrets in ${this.region} (single-Region)`,
      enableKeyRotation: true,
      multiRegion: false,
      pendingWindow,
      removalPolicy,
      policy: new iam.PolicyDocument({ statements: [adminStatement] }),
    });
    this.rootKey = this.rootKeyResource;
    ROOT_KEY_OWNERS.set(this.rootKeyResource.node.defaultChild as kms.CfnKey, this);
    this.statements.push({ sid: adminStatement.sid!, purpose: 'administration', principal: admins[0] });

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
   * this cell's encryption context. It cannot open any stored secret. A cell has one sealer
   * (the vault); a second call throws.
   */
  public grantSealSecrets(grantee: iam.IGrantable): iam.Grant {
    this.assertFirst('seal', 'grantSealSecrets', 'the vault function seals secrets; no other principal needs GenerateDataKey on the root key');
    return this.grantRootKey(grantee, 'SealSecrets', ROOT_KEY_SEAL_ACTIONS, 'seal');
  }

  /**
   * Lets the grantee open sealed tenant secrets: `kms:Decrypt` on the root key, only with this
   * cell's encryption context. Only the data path gets it: a second call throws. A further
   * decryptor is possible only through `addAdditionalDecryptor`, which synth reports.
   */
  public grantOpenSecrets(grantee: iam.IGrantable): iam.Grant {
    this.assertFirst('open', 'grantOpenSecrets', 'only the router opens secrets; declare any other decryptor with addAdditionalDecryptor (RegionalRouterProps.additionalDecryptors)');
    const grant = this.grantRootKey(grantee, 'OpenSecrets', ROOT_KEY_OPEN_ACTIONS, 'open');
    // During a root-key migration rows wrapped under a previous key must still open.
    if (this.previousRootKeyArns.length > 0) {
      iam.Grant.addToPrincipal({ grantee, actions: [...ROOT_KEY_OPEN_ACTIONS], resourceArns: [...this.previousRootKeyArns], conditions: this.contextConditions() });
    }
    return grant;
  }

  /**
   * Tenant-held keys (bring your own key): lets the grantee use KMS keys of the given accounts
   * in this cell's region only, with `actions` (the router's Decrypt, the vault's
   * GenerateDataKey), only with this cell's encryption context and a `tenant` pair present. The
   * tenant's own key policy decides the rest: it names these roles and its tenant id
   * (README: tenant-held keys), and the tenant can revoke it at any time.
   */
  public grantTenantHeldKeys(grantee: iam.IGrantable, accounts: readonly string[], use: 'open' | 'seal'): iam.Grant {
    for (const account of accounts) {
      if (!/^\d{12}$/.test(account)) throw new Error(`tenantKeyAccounts: '${account}' is not a 12-digit AWS account id`);
    }
    const base = this.contextConditions();
    return iam.Grant.addToPrincipal({
      grantee,
      actions: [...(use === 'open' ? ROOT_KEY_OPEN_ACTIONS : ROOT_KEY_SEAL_ACTIONS)],
      // Keys of those accounts in this region only: a key elsewhere cannot be used at all.
      resourceArns: accounts.map((a) => `arn:${Stack.of(this).partition}:kms:${this.region}:${a}:key/*`),
      conditions: { ...base, Null: { 'kms:EncryptionContext:tenant': 'false' } },
    });
  }

  /**
   * Lets the grantee move wrapped data keys from the previous root keys to the current one with
   * kms:ReEncrypt (ReEncryptFrom on the previous keys, ReEncryptTo on the current key), only with
   * this cell's encryption context. No kms:Decrypt: it never sees a data key. The current key's
   * policy names the grantee for both actions, so that once this key is itself a previous key
   * (after a `rootKeyGeneration` bump) its retained policy still lets the migrator move rows off it.
   * One migrator per cell; a second call throws.
   */
  public grantMigrateRootKey(grantee: iam.IGrantable): iam.Grant {
    this.assertFirst('migrate', 'grantMigrateRootKey', 'the root-key migration function is the one migrator of a cell');
    const conditions = this.contextConditions();
    const sid = `MigrateRootKey${++this.rootGrantCount}`;
    this.rootKeyResource.addToResourcePolicy(
      new iam.PolicyStatement({
        sid,
        principals: [grantee.grantPrincipal],
        actions: [...ROOT_KEY_REWRAP_FROM_ACTIONS, ...ROOT_KEY_REWRAP_TO_ACTIONS],
        resources: ['*'],
        conditions,
      }),
    );
    this.statements.push({ sid, purpose: 'migrate', principal: grantee.grantPrincipal });
    const grant = iam.Grant.addToPrincipal({ grantee, actions: [...ROOT_KEY_REWRAP_TO_ACTIONS], resourceArns: [this.rootKey.keyArn], conditions });
    if (this.previousRootKeyArns.length > 0) {
      iam.Grant.addToPrincipal({ grantee, actions: [...ROOT_KEY_REWRAP_FROM_ACTIONS], resourceArns: [...this.previousRootKeyArns], conditions });
    }
    return grant;
  }

  /**
   * Explicit opt-in: a principal other than the router that may open tenant secrets (for
   * example a break-glass recovery role). It weakens the separation of duties on purpose, so
   * every synthesis prints a warning naming the principal and the reason.
   */
  public addAdditionalDecryptor(decryptor: AdditionalDecryptor): iam.Grant {
    if (typeof decryptor?.reason !== 'string' || decryptor.reason.trim().length < 20) {
      throw new Error('AdditionalDecryptor.reason must explain (in at least 20 characters) why this principal opens tenant secrets');
    }
    const grant = this.grantRootKey({ grantPrincipal: decryptor.principal }, 'AdditionalDecryptor', ROOT_KEY_OPEN_ACTIONS, 'additional-decryptor', decryptor.reason);
    Annotations.of(this).addWarningV2(
      'sovereign-router:additional-decryptor',
      `Key separation weakened on purpose: ${decryptor.principal} may kms:Decrypt the root key besides the router. Reason: ${decryptor.reason}`,
    );
    return grant;
  }

  /**
   * Explicit opt-in for a maintenance window: the grantee may both open and seal tenant secrets
   * (kms:Decrypt and kms:GenerateDataKey, with the cell's encryption context), which a tenant-factor
   * rotation or a managed/sovereign conversion needs to reseal every secret. It weakens the
   * separation of duties on purpose, so every synthesis prints a warning naming the grantee.
   */
  public grantKeyLifecycle(grantee: iam.IGrantable, reason: string): iam.Grant {
    if (typeof reason !== 'string' || reason.trim().length < 20) {
      throw new Error('KeyHierarchy.grantKeyLifecycle: the reason must explain (in at least 20 characters) why the grantee reseals tenant secrets');
    }
    this.assertFirst('key-lifecycle', 'grantKeyLifecycle', 'one principal runs the key lifecycle (the admin function)');
    const grant = this.grantRootKey(grantee, 'KeyLifecycle', ROOT_KEY_LIFECYCLE_ACTIONS, 'key-lifecycle', reason);
    // Rows still wrapped under a previous root key (during a root-key migration) must open for a reseal.
    if (this.previousRootKeyArns.length > 0) {
      iam.Grant.addToPrincipal({ grantee, actions: [...ROOT_KEY_OPEN_ACTIONS], resourceArns: [...this.previousRootKeyArns], conditions: this.contextConditions() });
    }
    Annotations.of(this).addWarningV2(
      'sovereign-router:key-lifecycle',
      `Key separation weakened on purpose: ${grantee.grantPrincipal} may kms:Decrypt and kms:GenerateDataKey the root key (key lifecycle). Reason: ${reason}`,
    );
    return grant;
  }

  /**
   * Lets the grantee administer both keys (describe, rotate, enable/disable, schedule deletion,
   * change the policy) without any cryptographic action. Goes into both key policies, so it
   * works whether or not the account root administers the keys.
   */
  public grantAdministration(grantee: iam.IGrantable): iam.Grant {
    const principal = grantee.grantPrincipal;
    const sid = `KeyAdministration${++this.rootGrantCount}`;
    for (const key of [this.rootKeyResource, this.storageKeyResource]) {
      key.addToResourcePolicy(new iam.PolicyStatement({ sid, principals: [principal], actions: [...KEY_ADMIN_ACTIONS], resources: ['*'] }));
    }
    this.statements.push({ sid, purpose: 'administration', principal });
    return iam.Grant.addToPrincipal({ grantee, actions: [...KEY_ADMIN_ACTIONS], resourceArns: [this.rootKey.keyArn, this.storageKey.keyArn] });
  }

  /** Root-key statements created by this hierarchy on purpose (read by `KeySeparationGuard`). */
  public get rootKeyStatements(): readonly RootKeyStatement[] {
    return [...this.statements];
  }

  /**
   * Lets AWS services read data encrypted with the storage key on the grantee's behalf
   * (`kms:Decrypt`, `kms:DescribeKey` through the given services in this region only).
   */
  public grantStorageRead(grantee: iam.IGrantable, services: readonly StorageService[]): iam.Grant {
    if (services.length === 0) throw new Error('grantStorageRead needs at least one service');
    return iam.Grant.addToPrincipal({
      grantee,
      actions: [...STORAGE_KEY_READ_ACTIONS],
      resourceArns: [this.storageKey.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': services.map((s) => `${s}.${this.region}.amazonaws.com`) } },
    });
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
  private assertFirst(purpose: RootKeyStatementPurpose, method: string, why: string): void {
    const existing = this.statements.find((s) => s.purpose === purpose);
    if (existing) {
      throw new Error(`KeyHierarchy.${method} was already called for ${existing.principal}: ${why}.`);
    }
  }

  /** The encryption-context conditions of every root-key grant: this app, this region, known keys only. */
  private contextConditions() {
    return {
      StringEquals: {
        'kms:EncryptionContext:app': APP_CONTEXT,
        'kms:EncryptionContext:region': this.region,
      },
      'ForAllValues:StringEquals': { 'kms:EncryptionContextKeys': [...ENCRYPTION_CONTEXT_KEYS] },
    };
  }

  private grantRootKey(
    grantee: iam.IGrantable,
    sidStem: string,
    actions: readonly string[],
    purpose: RootKeyStatementPurpose,
    reason?: string,
  ): iam.Grant {
    const conditions = this.contextConditions();
    this.rootKeyResource.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: `${sidStem}${++this.rootGrantCount}`,
        principals: [grantee.grantPrincipal],
        actions: [...actions],
        resources: ['*'],
        conditions,
      }),
    );
    this.statements.push({ sid: `${sidStem}${this.rootGrantCount}`, purpose, principal: grantee.grantPrincipal, reason });
    return iam.Grant.addToPrincipal({
      grantee,
      actions: [...actions],
      resourceArns: [this.rootKey.keyArn],
      conditions,
    });
  }
}

const ROOT_KEY_OWNERS = new WeakMap<kms.CfnKey, KeyHierarchy>();

// arn:<partition>:kms:<region>:<account>:key/<id>, never a multi-Region (mrk-) key or an alias.
const SINGLE_REGION_KEY_ARN = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):key\/(?!mrk-)[A-Za-z0-9-]+$/;

/** Previous root keys must be concrete single-Region key ARNs of the cell's region (and account, when known). */
function checkPreviousRootKeys(arns: readonly string[], region: string, account: string): string[] {
  const seen = new Set<string>();
  for (const arn of arns) {
    if (Token.isUnresolved(arn)) throw new Error('KeyHierarchyProps.previousRootKeyArns must be literal key ARNs (they go into the functions\' environment and policies)');
    const m = SINGLE_REGION_KEY_ARN.exec(arn);
    if (!m) throw new Error(`KeyHierarchyProps.previousRootKeyArns: '${arn}' is not the full ARN of a single-Region KMS key (aliases and multi-Region keys are refused)`);
    if (m[1] !== region) throw new Error(`KeyHierarchyProps.previousRootKeyArns: '${arn}' is in ${m[1]}, not in the cell's region ${region}; root keys never leave their region`);
    if (!Token.isUnresolved(account) && m[2] !== account) throw new Error(`KeyHierarchyProps.previousRootKeyArns: '${arn}' belongs to account ${m[2]}, not to the cell's account ${account}`);
    if (seen.has(arn)) throw new Error(`KeyHierarchyProps.previousRootKeyArns names '${arn}' twice`);
    seen.add(arn);
  }
  return [...seen];
}
