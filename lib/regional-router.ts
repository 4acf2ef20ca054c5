import { Aspects, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { checkPriceTable, PriceTableConfig } from '../lambda/core/governance/prices';
import { isSupportedRegion, REGION_CODES } from '../lambda/core/regions';
import { ProviderEndpoints, providerEndpointProblems } from './config/provider-endpoint';
import { ResidencyMode, residencyProblems } from './config/provider-residency';
import { AdditionalDecryptor, IRootKey, KeyHierarchy } from './key-hierarchy';
import { KeySeparationGuard } from './key-separation-guard';
import { CellFunction } from './private/cell-function';
import { API_INVOKE_ACTIONS, BEDROCK_APPLY_GUARDRAIL_ACTIONS, BEDROCK_INVOKE_ACTIONS, PEPPER_ROTATE_ACTIONS, SECRET_READ_ACTIONS, TABLE_QUERY_ACTIONS } from './private/iam-actions';
import { ResidencyGuard } from './residency-guard';
import { METRICS_NAMESPACE } from '../lambda/core/router/metrics';
import { RouterApi, RouterApiThrottle } from './router-api';
import { RouterObservability } from './router-observability';
import * as sns from 'aws-cdk-lib/aws-sns';
import { RouterTables } from './router-tables';
import { AccountGuards } from './account-guards';
import { AuditIntegrity } from './audit-integrity';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { CellAlarmTopic } from './alarm-topic';
import { TABLE_SCHEMAS, TableName, tableEnvVar } from './table-schemas';

/** Reserved concurrency per function. */
export interface CellConcurrency {
  /**
   * Router (data path). Caps it, so long streams cannot take the account's whole pool.
   * @default 100
   */
  readonly router?: number;
  /**
   * Vault (tenant secrets and tokens). Kept for it whatever the router does.
   * @default 5
   */
  readonly vault?: number;
  /**
   * Admin (operators). Kept for it whatever the router does.
   * @default 2
   */
  readonly admin?: number;
}

/** Memory per function, in MiB. */
export interface CellMemory {
  /** @default 1024 */
  readonly router?: number;
  /** @default 512 */
  readonly vault?: number;
  /** @default 512 */
  readonly admin?: number;
}

/** A Bedrock guardrail id as ApplyGuardrail takes it in the path (the policy schema's pattern). */
const BEDROCK_GUARDRAIL_ID = /^[a-z0-9]{1,64}$/;

export interface RegionalRouterProps {
  /** Provider endpoints the router may call from this region (its egress allowlist). */
  readonly providers: ProviderEndpoints;
  /**
   * `strict`: synth fails unless every provider endpoint processes prompts in the cell's zone
   * (EU for EU regions...): catalogued in-region endpoints (eu.api.openai.com, api.mistral.ai for
   * the EU), Amazon Bedrock in a region of the zone, or endpoints you declare with `dataZone`.
   * @default 'standard'
   */
  readonly residency?: ResidencyMode;
  /**
   * Ids of the Amazon Bedrock guardrails, in this account and the cell's region, that tenant
   * policies may name (`guardrails.bedrock`): the router's role may call ApplyGuardrail on these
   * only. A policy naming another guardrail is refused at request time (502 guardrail_error).
   * @default - none: a policy naming a Bedrock guardrail is refused
   */
  readonly bedrockGuardrails?: string[];
  /**
   * Administrators of the root and storage keys (manage, never use).
   * @default - the account root, delegating key administration to IAM
   */
  readonly keyAdmins?: iam.IPrincipal[];
  /**
   * Retention of function and access logs.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Stage throttling of the API.
   * @default { rateLimit: 100, burstLimit: 200 }
   */
  readonly throttle?: RouterApiThrottle;
  /**
   * Largest request body the router and vault accept, in bytes.
   * @default 1048576 (1 MiB)
   */
  readonly maxRequestBytes?: number;
  /**
   * Overall deadline of one routed request (all retries and fallbacks included).
   * @default Duration.minutes(5)
   */
  readonly requestDeadline?: Duration;
  /**
   * ARN of a regional WAFv2 web ACL for the API stage.
   * @default - no web ACL
   */
  readonly webAclArn?: string;
  /**
   * Topic that the cell's alarms (alarm and OK) and account-level guards notify. A topic of your
   * own must let cloudwatch.amazonaws.com and events.amazonaws.com publish (and use its key).
   * @default - a new topic encrypted with a key of its own (`alarmTopic` member)
   */
  readonly alarmTopic?: sns.ITopic;
  /**
   * Prices for budgets, in USD per million tokens, merged over the built-in table (current
   * OpenAI, Anthropic and Mistral list prices). Keys under `models` are provider ids (or provider
   * kinds) and lower-case model prefixes; the longest matching prefix wins. `fallback` prices any
   * model no entry matches (never free). Passed to the functions as PRICE_TABLE; keep it small
   * (at most 2048 characters of JSON), since Lambda environments are limited to 4 KiB.
   *
   * @example { models: { openai: { 'gpt-4o': { input: 2.5, output: 10 } } }, fallback: { input: 20, output: 80 } }
   * @default - the built-in price table; unknown models at $15 input / $75 output per million tokens
   */
  readonly prices?: PriceTableConfig;
  /**
   * Removal policy of keys, tables and the pepper. Keep RETAIN outside of throwaway test accounts:
   * deleting the root key destroys every sealed secret.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * How long each audit anchor stays locked (S3 Object Lock, compliance mode): until then nobody,
   * the account root included, can delete it. Whole days.
   * @default Duration.days(365)
   */
  readonly auditAnchorRetention?: Duration;
  /**
   * Stage name of the API; clients use `https://<api>/<stage>/v1`.
   * @default 'prod'
   */
  readonly stageName?: string;
  /**
   * Memory of each function, in MiB (128 to 10240).
   * @default { router: 1024, vault: 512, admin: 512 }
   */
  readonly memory?: CellMemory;
  /**
   * Reserved concurrency of each function: the router is capped and the vault and admin keep
   * capacity of their own. Reserved concurrency comes out of the account's pool, which must keep
   * at least 100 unreserved; set `reserveConcurrency: false` in accounts with a small quota.
   * @default { router: 100, vault: 5, admin: 2 }
   */
  readonly concurrency?: CellConcurrency;
  /**
   * Whether to reserve concurrency at all (see `concurrency`).
   * @default true
   */
  readonly reserveConcurrency?: boolean;
  /**
   * When no `webAclArn` is given, the cell creates a WAF web ACL that answers 413 to requests
   * whose Content-Length exceeds `maxRequestBytes` before any function runs (WAF has a monthly
   * cost). Set false to do without it; the functions still enforce the limit.
   * @default true
   */
  readonly requestSizeWebAcl?: boolean;
  /**
   * Principals allowed on `/admin`. When given, the API's resource policy denies `/admin` to
   * everyone else (grantees of `grantInvokeAdminApi` join the list); principals still need IAM
   * permission (`grantInvokeAdminApi`). Principals of other accounts are always denied.
   * @default - any principal of this account that IAM allows
   */
  readonly adminPrincipals?: iam.IPrincipal[];
  /**
   * Principals besides the router that may open tenant secrets (kms:Decrypt on the root key).
   * This weakens the separation of duties on purpose; every synthesis prints a warning naming
   * each principal and its reason.
   * @default - none: only the router opens secrets
   */
  readonly additionalDecryptors?: AdditionalDecryptor[];
  /**
   * Which root key the cell's key hierarchy creates; raise it to move the cell to a new root key
   * (name the old key in `previousRootKeyArns`, then run `sovereign-router root-key migrate`).
   * @default 1
   */
  readonly rootKeyGeneration?: number;
  /**
   * Root keys this cell used before its current one (literal ARNs of single-Region keys in the
   * cell's region and account). The router still opens rows wrapped under them, and the
   * root-key migration function moves those rows to the current key with kms:ReEncrypt. Remove
   * them once `sovereign-router root-key status` reports the migration complete.
   * @default - none
   */
  readonly previousRootKeyArns?: string[];
  /**
   * Key lifecycle in the cell: the admin function may open and seal tenant secrets (kms:Decrypt and
   * kms:GenerateDataKey on the root key, cell encryption context only), so that
   * `tenants rotate-factor` and `tenants convert` reseal secrets here. This weakens the separation
   * of duties on purpose (synthesis prints a warning): turn it on for the maintenance, deploy, run
   * the commands, turn it off and deploy again. Without it those admin routes answer 501.
   * @default false
   */
  readonly keyLifecycle?: boolean;
  /**
   * Accounts whose KMS keys tenants may hold as the root of their data keys (bring your own
   * key, README: tenant-held keys). The router may Decrypt and the vault GenerateDataKey with keys
   * of these accounts in the cell's region only, with the cell's encryption context; each key's
   * own policy (the tenant's) must allow it too. Operators register a tenant's key in its policy
   * (`tenantKeyArn`).
   * @default - none: tenants cannot bring their own keys
   */
  readonly tenantKeyAccounts?: string[];
  /**
   * Code signing for the three functions. Deployments then need the function assets signed
   * (AWS Signer) by a profile the configuration trusts.
   * @default - no code signing
   */
  readonly codeSigningConfig?: lambda.ICodeSigningConfig;
  /**
   * Permissions boundary applied to every role the cell creates.
   * @default - no permissions boundary
   */
  readonly rolePermissionsBoundary?: iam.IManagedPolicy;
}

/**
 * One regional cell of sovereign-router: the key hierarchy, the tables, the pepper, the router,
 * vault and admin functions with separate roles, and the regional API. One `new` deploys a
 * safe cell; tenants of the cell, their keys and their data stay in its region.
 */
export class RegionalRouter extends Construct {
  public readonly region: string;
  /** The root key, identifiers only: its use is decided by the key policy (router Decrypt, vault GenerateDataKey). */
  public readonly rootKey: IRootKey;
  /** Encrypts tables, the pepper and logs; usable by the account only through DynamoDB and Secrets Manager. */
  public readonly storageKey: kms.IKey;
  public readonly tables: RouterTables;
  public readonly tenantsTable: dynamodb.ITable;
  public readonly tokensTable: dynamodb.ITable;
  /** Governance counters and reservations (hot, transactional). */
  public readonly countersTable: dynamodb.ITable;
  /** Per-request usage records (append-only, TTL). */
  public readonly usageTable: dynamodb.ITable;
  public readonly auditTable: dynamodb.ITable;
  /** Response-cache entries (opt-in per tenant): sealed per tenant, TTL; only the router reads or writes it. */
  public readonly cacheTable: dynamodb.ITable;
  /** The audit MAC key (KMS HMAC_256) and the write-once anchor bucket (S3 Object Lock, compliance). */
  public readonly auditIntegrity: AuditIntegrity;
  public readonly auditKey: kms.IKey;
  public readonly auditAnchorBucket: s3.IBucket;
  /** The region's pepper for API-key verifiers (generated by Secrets Manager). */
  public readonly pepper: secretsmanager.ISecret;
  public readonly routerFunction: lambda.IFunction;
  public readonly vaultFunction: lambda.IFunction;
  public readonly adminFunction: lambda.IFunction;
  public readonly routerRole: iam.IRole;
  public readonly vaultRole: iam.IRole;
  public readonly adminRole: iam.IRole;
  /** Rewraps data keys from previous root keys to the current one (kms:ReEncrypt only). */
  public readonly rootKeyMigrationFunction: lambda.IFunction;
  public readonly rootKeyMigrationRole: iam.IRole;
  public readonly api: apigateway.IRestApi;
  /** Base URL for OpenAI/Anthropic SDK clients: `<api url>v1`. */
  public readonly endpointUrl: string;
  /** Dashboard and alarms of the cell. */
  public readonly observability: RouterObservability;
  /** Where alarms and account-level guards notify. */
  public readonly alarmTopic: sns.ITopic;
  /** EventBridge rules on CloudTrail events touching the cell's keys, functions and roles. */
  public readonly guards: AccountGuards;

  private readonly keys: KeyHierarchy;
  private readonly routerApi: RouterApi;
  private readonly providers: ProviderEndpoints;
  private readonly bedrockGuardrails: readonly string[];
  private readonly stageName: string;

  constructor(scope: Construct, id: string, props: RegionalRouterProps) {
    super(scope, id);
    const region = Stack.of(this).region;
    if (!isSupportedRegion(region)) {
      throw new Error(
        `RegionalRouter '${this.node.path}' needs a stack with a concrete, supported region (env.region); got '${region}'. ` +
          `Supported: ${Object.keys(REGION_CODES).join(', ')}`,
      );
    }
    const problems = [
      ...providerEndpointProblems(props?.providers, `RegionalRouter ${region}`),
      ...residencyProblems(region, props?.residency, props?.providers, `RegionalRouter ${region}`),
    ];
    for (const g of props.bedrockGuardrails ?? []) {
      if (!BEDROCK_GUARDRAIL_ID.test(g)) problems.push(`RegionalRouterProps.bedrockGuardrails: '${g}' is not a Bedrock guardrail id (lower-case letters and digits; an ARN would name a region and account, the cell's are used)`);
    }
    if (problems.length > 0) throw new Error(problems.join('\n'));
    const maxRequestBytes = props.maxRequestBytes ?? 1024 * 1024;
    if (!Number.isInteger(maxRequestBytes) || maxRequestBytes < 1024 || maxRequestBytes > 6 * 1024 * 1024) {
      throw new Error(`RegionalRouterProps.maxRequestBytes must be an integer between 1024 and 6291456, got ${maxRequestBytes}`);
    }
    const deadline = props.requestDeadline ?? Duration.minutes(5);
    if (deadline.toSeconds() < 5 || deadline.toSeconds() > 14 * 60) {
      throw new Error(`RegionalRouterProps.requestDeadline must be between 5 seconds and 14 minutes`);
    }
    const memory = { router: 1024, vault: 512, admin: 512, ...definedOnly(props.memory) };
    for (const [fn, mb] of Object.entries(memory)) {
      if (!Number.isInteger(mb) || mb < 128 || mb > 10240) throw new Error(`RegionalRouterProps.memory.${fn} must be an integer between 128 and 10240 MiB, got ${mb}`);
    }
    const concurrency = { router: 100, vault: 5, admin: 2, ...definedOnly(props.concurrency) };
    for (const [fn, n] of Object.entries(concurrency)) {
      if (!Number.isInteger(n) || n < 1) throw new Error(`RegionalRouterProps.concurrency.${fn} must be a positive integer, got ${n}`);
    }
    const reserve = props.reserveConcurrency ?? true;
    this.stageName = props.stageName ?? 'prod';
    this.region = region;
    this.providers = props.providers;
    this.bedrockGuardrails = [...new Set(props.bedrockGuardrails ?? [])].sort();
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const logRetention = props.logRetention ?? logs.RetentionDays.THREE_MONTHS;

    this.keys = new KeyHierarchy(this, 'Keys', {
      keyAdmins: props.keyAdmins,
      removalPolicy,
      rootKeyGeneration: props.rootKeyGeneration,
      previousRootKeyArns: props.previousRootKeyArns,
    });
    this.rootKey = this.keys.rootKey;
    this.storageKey = this.keys.storageKey;

    this.tables = new RouterTables(this, 'Tables', { encryptionKey: this.storageKey, removalPolicy });
    this.tenantsTable = this.tables.tenants;
    this.tokensTable = this.tables.tokens;
    this.countersTable = this.tables.counters;
    this.usageTable = this.tables.usage;
    this.auditTable = this.tables.audit;
    this.cacheTable = this.tables.cache;

    const pepper = new secretsmanager.Secret(this, 'Pepper', {
      description: `sovereign-router ${region} pepper for API-key verifiers (not tenant plaintext)`,
      encryptionKey: this.storageKey,
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
      removalPolicy,
    });
    this.pepper = pepper;
    Validations.of(pepper).acknowledge({
      id: 'AwsSolutions::AwsSolutions-SMG4',
      reason:
        'Pepper rotation is an operator command (`sovereign-router pepper rotate`, README: Operations) that must wait until every live token moved to the current version; a scheduled rotation could retire tokens that were not used in between.',
    });

    this.auditIntegrity = new AuditIntegrity(this, 'AuditIntegrity', {
      keyAdmins: props.keyAdmins,
      anchorRetention: props.auditAnchorRetention,
      removalPolicy,
    });
    this.auditKey = this.auditIntegrity.auditKey;
    this.auditAnchorBucket = this.auditIntegrity.anchorBucket;

    const environment: Record<string, string> = {
      AUDIT_KEY_ARN: this.auditKey.keyArn,
      AUDIT_ANCHOR_BUCKET: this.auditAnchorBucket.bucketName,
      CELL_REGION: region,
      ROOT_KEY_ARN: this.rootKey.keyArn,
      ...(this.keys.previousRootKeyArns.length > 0 ? { PREVIOUS_ROOT_KEY_ARNS: this.keys.previousRootKeyArns.join(',') } : {}),
      PEPPER_SECRET_ARN: pepper.secretArn,
      PROVIDER_ENDPOINTS: JSON.stringify(props.providers),
      MAX_REQUEST_BYTES: String(maxRequestBytes),
      REQUEST_DEADLINE_MS: String(deadline.toMilliseconds()),
      POWERTOOLS_SERVICE_NAME: 'sovereign-router',
    };
    for (const name of Object.keys(TABLE_SCHEMAS) as TableName[]) {
      environment[tableEnvVar(name)] = this.tables.table(name).tableName;
    }
    if (props.prices !== undefined) {
      const priceTable = JSON.stringify(checkPriceTable(props.prices, 'RegionalRouterProps.prices'));
      if (priceTable.length > 2048) {
        throw new Error(`RegionalRouterProps.prices is ${priceTable.length} characters of JSON; keep it under 2048 (Lambda environments hold 4 KiB)`);
      }
      environment.PRICE_TABLE = priceTable;
    }
    const common = { environment, logKey: this.storageKey, logRetention, codeSigningConfig: props.codeSigningConfig };

    const router = new CellFunction(this, 'Router', {
      ...common,
      handler: 'router',
      description: 'sovereign-router data path: opens one sealed secret per request and calls the provider',
      memorySize: memory.router,
      reservedConcurrency: reserve ? concurrency.router : undefined,
      timeout: Duration.seconds(Math.min(deadline.toSeconds() + 30, 900)),
    });
    const vault = new CellFunction(this, 'Vault', {
      ...common,
      handler: 'vault',
      description: 'sovereign-router tenant vault: seals provider secrets, manages tenant tokens',
      memorySize: memory.vault,
      reservedConcurrency: reserve ? concurrency.vault : undefined,
      timeout: Duration.seconds(15),
    });
    const admin = new CellFunction(this, 'Admin', {
      ...common,
      // Read by the admin handler: only then does it wire a data-key service for reseals.
      ...(props.keyLifecycle ? { environment: { ...environment, KEY_LIFECYCLE: 'enabled' } } : {}),
      handler: 'admin',
      description: 'sovereign-router operator API: tenants, policies, usage, audit',
      memorySize: memory.admin,
      reservedConcurrency: reserve ? concurrency.admin : undefined,
      timeout: Duration.seconds(30),
    });
    // Root-key migration: its own role, ReEncrypt without Decrypt; operators call it via /admin/root-key.
    const migration = new CellFunction(this, 'RootKeyMigration', {
      ...common,
      handler: 'root-key-migration',
      description: 'sovereign-router root-key migration: rewraps data keys from previous root keys to the current one (kms:ReEncrypt, no Decrypt)',
      memorySize: 512,
      reservedConcurrency: reserve ? 1 : undefined,
      timeout: Duration.seconds(29),
    });
    this.rootKeyMigrationFunction = migration.function;
    this.rootKeyMigrationRole = migration.role;
    this.routerFunction = router.function;
    this.vaultFunction = vault.function;
    this.adminFunction = admin.function;
    this.routerRole = router.role;
    this.vaultRole = vault.role;
    this.adminRole = admin.role;

    // Separation of duties: only the router opens secrets; only the vault seals them.
    this.keys.grantOpenSecrets(router.role);
    this.keys.grantSealSecrets(vault.role);
    for (const decryptor of props.additionalDecryptors ?? []) this.keys.addAdditionalDecryptor(decryptor);
    this.keys.grantMigrateRootKey(migration.role);
    if ((props.tenantKeyAccounts ?? []).length > 0) {
      this.keys.grantTenantHeldKeys(router.role, props.tenantKeyAccounts!, 'open');
      this.keys.grantTenantHeldKeys(vault.role, props.tenantKeyAccounts!, 'seal');
    }
    // Migration: scans sealed rows, writes each rewrapped row with its audit event (MAC, anchor).
    this.keys.grantStorageUse(migration.role, ['dynamodb']);
    this.tables.grantReadWrite('tenants', migration.role);
    this.tables.grantSealedRowScan(migration.role);
    this.tables.grantAuditAppend(migration.role);
    this.auditIntegrity.grantAppend(migration.role);
    if (props.keyLifecycle) {
      this.keys.grantKeyLifecycle(admin.role, 'keyLifecycle is on: the admin function reseals tenant secrets for factor rotation and mode conversion');
      // A reseal opens and seals with the tenant's erasure key (and makes one for a tenant that has none).
      this.tables.grantErasureKeyCreate(admin.role);
    }

    for (const fn of [router, vault, admin]) {
      this.keys.grantStorageUse(fn.role, ['dynamodb', 'secretsmanager']);
      iam.Grant.addToPrincipal({ grantee: fn.role, actions: [...SECRET_READ_ACTIONS], resourceArns: [pepper.secretArn] });
    }
    // Router: Amazon Bedrock models of `auth: 'iam'` providers, in this region only.
    this.grantInvokeBedrockModels(router.role);
    // Router: ApplyGuardrail on the listed Bedrock guardrails, in this region only.
    this.grantApplyBedrockGuardrails(router.role);
    // Router: reads its request's items, keeps the governance counters, appends usage records.
    this.tables.grantRead('tenants', router.role);
    this.tables.grantRead('tokens', router.role);
    // Its one write to tokens: moving a token it just authenticated to the current pepper.
    this.tables.grantTokenVerifierMove(router.role);
    this.tables.grantReadWrite('counters', router.role);
    this.tables.grantUsageAppend(router.role);
    this.tables.grantCacheReadWrite(router.role);
    this.tables.grantErasureKeyRead(router.role);

    // Vault: the tenant's own secrets and tokens; no governance or usage access.
    this.tables.grantReadWrite('tenants', vault.role);
    this.tables.grantReadWrite('tokens', vault.role);
    // GET /vault/usage: a tenant admin's own records, one key range per query.
    this.tables.grantUsageQuery(vault.role);
    this.tables.grantAuditAppend(vault.role);
    this.tables.grantErasureKeyCreate(vault.role);

    // Admin: tenants and tokens; reads counters (usage report) and usage records, writes neither.
    this.tables.grantReadWrite('tenants', admin.role);
    this.tables.grantReadWrite('tokens', admin.role);
    // Pepper rotation (README: Operations): a new secret version, and a count of tokens per version.
    this.tables.grantTokenInventory(admin.role);
    iam.Grant.addToPrincipal({ grantee: admin.role, actions: [...PEPPER_ROTATE_ACTIONS], resourceArns: [pepper.secretArn] });
    this.tables.grantRead('counters', admin.role);
    this.tables.grantRead('usage', admin.role);
    this.tables.grantAuditAppend(admin.role);
    // Offboarding crypto-shreds: it deletes the tenant's erasure key, and can read none.
    this.tables.grantErasureKeyDestroy(admin.role);
    // Both append (GenerateMac, new anchors) and show verified trails (VerifyMac, anchor reads);
    // the router has no part in the audit trail.
    for (const fn of [vault, admin]) {
      this.auditIntegrity.grantAppend(fn.role);
      this.auditIntegrity.grantVerify(fn.role);
    }

    this.alarmTopic = props.alarmTopic ?? new CellAlarmTopic(this, 'Alarms', { keyAdmins: props.keyAdmins ?? [new iam.AccountRootPrincipal()] }).topic;

    const api = new RouterApi(this, 'Api', {
      router: router.function,
      vault: vault.function,
      admin: admin.function,
      rootKeyMigration: migration.function,
      logKey: this.storageKey,
      logRetention,
      throttle: props.throttle,
      webAclArn: props.webAclArn,
      stageName: this.stageName,
      maxRequestBytes,
      requestSizeWebAcl: props.requestSizeWebAcl,
      adminPrincipals: props.adminPrincipals,
    });
    this.routerApi = api;
    this.api = api.restApi;
    this.endpointUrl = `${api.restApi.url}v1`;

    this.observability = new RouterObservability(this, 'Observability', {
      region,
      api: api.restApi,
      router: router.function,
      vault: vault.function,
      admin: admin.function,
      alarmTopic: this.alarmTopic,
    });

    this.guards = new AccountGuards(this, 'Guards', {
      secretKeys: [this.rootKey],
      storageKeys: [this.storageKey],
      functions: [router.function, vault.function, admin.function, migration.function],
      roles: [router.role, vault.role, admin.role, migration.role],
      alarmTopic: this.alarmTopic,
      noCopyTables: [this.tables.erasure],
      // Keys, functions and roles added to the cell later are watched too.
      watchScope: this,
    });
    if (props.rolePermissionsBoundary) iam.PermissionsBoundary.of(this).apply(props.rolePermissionsBoundary);

    // The cell guards itself: a user who composes it keeps both synth-time checks.
    Aspects.of(this).add(new ResidencyGuard());
    Aspects.of(Stack.of(this)).add(new KeySeparationGuard());
  }

  /**
   * Lets the grantee call the admin API (`/admin/*`, SigV4). When `adminPrincipals` restricts
   * `/admin`, the grantee also joins the API's resource-policy allow list.
   */
  public grantInvokeAdminApi(grantee: iam.IGrantable): iam.Grant {
    this.routerApi.allowAdminPrincipal(grantee.grantPrincipal);
    return iam.Grant.addToPrincipal({
      grantee,
      actions: [...API_INVOKE_ACTIONS],
      resourceArns: [this.routerApi.restApi.arnForExecuteApi('*', '/admin/*', this.stageName)],
    });
  }

  /**
   * Lets the grantee invoke, through Converse and ConverseStream, the Amazon Bedrock foundation
   * models that the cell's `bedrock` providers with `auth: 'iam'` list, in the cell's region only
   * (`bedrock:InvokeModel`, `bedrock:InvokeModelWithResponseStream` on those model ARNs, with
   * `aws:RequestedRegion` pinned). The cell grants its router this; nothing when no provider uses
   * `iam`.
   */
  public grantInvokeBedrockModels(grantee: iam.IGrantable): iam.Grant {
    const models = [...new Set(Object.values(this.providers).flatMap((p) => (p.kind === 'bedrock' && p.auth === 'iam' ? (p.models ?? []) : [])))].sort();
    if (models.length === 0) return iam.Grant.drop(grantee, 'no Amazon Bedrock provider uses auth iam');
    const partition = Stack.of(this).partition;
    return iam.Grant.addToPrincipal({
      grantee,
      actions: [...BEDROCK_INVOKE_ACTIONS],
      resourceArns: models.map((m) => `arn:${partition}:bedrock:${this.region}::foundation-model/${m}`),
      conditions: { StringEquals: { 'aws:RequestedRegion': this.region } },
    });
  }

  /**
   * Lets the grantee call ApplyGuardrail on the Amazon Bedrock guardrails listed in
   * `bedrockGuardrails`, in the cell's region and account only (`bedrock:ApplyGuardrail` on
   * `arn:<partition>:bedrock:<region>:<account>:guardrail/<id>`, `aws:RequestedRegion` pinned).
   * The cell grants its router this; nothing when none is listed.
   */
  public grantApplyBedrockGuardrails(grantee: iam.IGrantable): iam.Grant {
    if (this.bedrockGuardrails.length === 0) return iam.Grant.drop(grantee, 'no Amazon Bedrock guardrail listed');
    const stack = Stack.of(this);
    return iam.Grant.addToPrincipal({
      grantee,
      actions: [...BEDROCK_APPLY_GUARDRAIL_ACTIONS],
      resourceArns: this.bedrockGuardrails.map((id) => `arn:${stack.partition}:bedrock:${this.region}:${stack.account}:guardrail/${id}`),
      conditions: { StringEquals: { 'aws:RequestedRegion': this.region } },
    });
  }

  /** Lets the grantee read usage records and spend counters (DynamoDB reads, storage key through DynamoDB only). */
  public grantReadUsage(grantee: iam.IGrantable): iam.Grant {
    return this.grantTableReads(grantee, [this.usageTable, this.countersTable]);
  }

  /** Lets the grantee read the audit trail (DynamoDB reads, storage key through DynamoDB only). */
  public grantReadAuditTrail(grantee: iam.IGrantable): iam.Grant {
    return this.grantTableReads(grantee, [this.auditTable]);
  }

  /**
   * Lets the grantee verify audit trails with its own credentials: `kms:VerifyMac` on the audit
   * key, the anchors (every version), and reads of the audit and tenants tables (events, the
   * tenant's head and its sealed rows, never their plaintext). It cannot append or forge.
   */
  public grantVerifyAudit(grantee: iam.IGrantable): iam.Grant {
    this.auditIntegrity.grantVerify(grantee);
    return this.grantTableReads(grantee, [this.auditTable, this.tenantsTable]);
  }

  /**
   * Lets the grantee administer the root and storage keys (rotate, enable/disable, schedule
   * deletion, change the policy) without any cryptographic action on them. Written into both
   * key policies. Changing a key policy is watched by the cell's account-level guards.
   */
  public grantKeyAdministration(grantee: iam.IGrantable): iam.Grant {
    return this.keys.grantAdministration(grantee);
  }

  /** Router function errors (unhandled failures on the data path). @default Sum over 5 minutes */
  public metricErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.routerFunction.metricErrors({ period: Duration.minutes(5), ...props });
  }

  /** Requests by decision (`ok`, `denied`, `failed`, `client_error`...). @default Sum over 5 minutes, all decisions */
  public metricRequests(decision?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.cellMetric('Requests', 'Sum', decision ? { Decision: decision } : {}, props);
  }

  /** End-to-end latency of routed requests, in milliseconds. @default p95 over 5 minutes */
  public metricLatency(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.cellMetric('Latency', 'p95', {}, props);
  }

  /** Time to the first token of streamed answers, in milliseconds. @default p95 over 5 minutes */
  public metricTimeToFirstToken(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.cellMetric('TimeToFirstToken', 'p95', {}, props);
  }

  /** Requests denied by governance (budget, rate, model, IP, max tokens). @default Sum over 5 minutes */
  public metricDenials(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metricRequests('denied', props);
  }

  /** Requests no provider could serve (all targets failed or the deadline passed). @default Sum over 5 minutes */
  public metricUpstreamFailures(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metricRequests('failed', props);
  }

  /** API Gateway 5xx answers of the cell's API. @default Sum over 5 minutes */
  public metricApiServerErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.routerApi.restApi.metricServerError({ period: Duration.minutes(5), statistic: 'Sum', ...props });
  }

  private cellMetric(metricName: string, statistic: string, dimensions: Record<string, string>, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName,
      statistic,
      period: Duration.minutes(5),
      ...props,
      dimensionsMap: { Region: this.region, ...dimensions, ...props?.dimensionsMap },
    });
  }

  private grantTableReads(grantee: iam.IGrantable, tables: dynamodb.ITable[]): iam.Grant {
    this.keys.grantStorageRead(grantee, ['dynamodb']);
    return iam.Grant.addToPrincipal({
      grantee,
      actions: [...TABLE_QUERY_ACTIONS],
      resourceArns: tables.flatMap((t) => [t.tableArn, `${t.tableArn}/index/*`]),
    });
  }
}

/** Drops keys whose value is undefined, so `{ ...defaults, ...definedOnly(props) }` keeps defaults. */
function definedOnly<T extends object>(value: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(value ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}
