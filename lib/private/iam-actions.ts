/**
 * Every hand-written IAM action list of the construct library, in one place so that a reviewer
 * can read the whole permission surface at once.
 */

/**
 * Key administration without any cryptographic use. `kms:CreateGrant` is deliberately absent:
 * a grant is a way to hand out Decrypt, so it is not an administrative action here.
 * `kms:PutKeyPolicy` stays, because CloudFormation needs it to deploy policy changes; rewriting
 * the key policy is the escalation path to watch in CloudTrail (see README, security model).
 */
export const KEY_ADMIN_ACTIONS = [
  'kms:CancelKeyDeletion',
  'kms:CreateAlias',
  'kms:DeleteAlias',
  'kms:DescribeKey',
  'kms:DisableKey',
  'kms:DisableKeyRotation',
  'kms:EnableKey',
  'kms:EnableKeyRotation',
  'kms:GetKeyPolicy',
  'kms:GetKeyRotationStatus',
  'kms:ListAliases',
  'kms:ListGrants',
  'kms:ListKeyPolicies',
  'kms:ListKeyRotations',
  'kms:ListResourceTags',
  'kms:PutKeyPolicy',
  'kms:RevokeGrant',
  'kms:RotateKeyOnDemand',
  'kms:ScheduleKeyDeletion',
  'kms:TagResource',
  'kms:UntagResource',
  'kms:UpdateAlias',
  'kms:UpdateKeyDescription',
] as const;

/** The only root-key action of the router (data path): unwrap one data key per request. */
export const ROOT_KEY_OPEN_ACTIONS = ['kms:Decrypt'] as const;

/** The only root-key action of the vault (write path): seal new secrets, never open stored ones. */
export const ROOT_KEY_SEAL_ACTIONS = ['kms:GenerateDataKey'] as const;

/**
 * Root-key migration, on the previous root keys: move a wrapped data key away from them inside
 * KMS. With no kms:Decrypt, the migrator never sees a plaintext data key.
 */
export const ROOT_KEY_REWRAP_FROM_ACTIONS = ['kms:ReEncryptFrom'] as const;

/** Root-key migration, on the current root key: receive wrapped data keys moved from a previous one. */
export const ROOT_KEY_REWRAP_TO_ACTIONS = ['kms:ReEncryptTo'] as const;

/** Reading every sealed row of the tenants table, a page at a time (root-key migration only). */
export const TABLE_SCAN_ACTIONS = ['dynamodb:Scan'] as const;

/**
 * Opt-in key lifecycle (RegionalRouterProps.keyLifecycle): a reseal opens a secret and seals it
 * again, so the admin function gets both, for the maintenance window only.
 */
export const ROOT_KEY_LIFECYCLE_ACTIONS = ['kms:Decrypt', 'kms:GenerateDataKey'] as const;

/** Reading data encrypted with the storage key, through a service (always with kms:ViaService). */
export const STORAGE_KEY_READ_ACTIONS = ['kms:Decrypt', 'kms:DescribeKey'] as const;

/** Use of the storage key by AWS services on a function's behalf (always with kms:ViaService). */
export const STORAGE_KEY_USE_ACTIONS = [
  'kms:Decrypt',
  'kms:Encrypt',
  'kms:ReEncryptFrom',
  'kms:ReEncryptTo',
  'kms:GenerateDataKey',
  'kms:GenerateDataKeyWithoutPlaintext',
  'kms:DescribeKey',
] as const;

/** DynamoDB and Secrets Manager create grants on the storage key for the resources they encrypt. */
export const STORAGE_KEY_GRANT_ACTIONS = ['kms:CreateGrant'] as const;

/** CloudWatch Logs encrypting a log group with the storage key. */
export const LOGS_SERVICE_KEY_ACTIONS = [
  'kms:Encrypt*',
  'kms:Decrypt*',
  'kms:ReEncrypt*',
  'kms:GenerateDataKey*',
  'kms:Describe*',
] as const;

export const TABLE_READ_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:ConditionCheckItem',
  'dynamodb:DescribeTable',
] as const;

export const TABLE_WRITE_ACTIONS = [
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
] as const;

/**
 * The router appends usage records and reads one back by key (the reclaim of a reservation whose
 * settle failed charges the cost that request recorded); it never queries, updates or deletes them.
 */
export const USAGE_APPEND_ACTIONS = ['dynamodb:PutItem', 'dynamodb:GetItem'] as const;

/**
 * The router reads and writes response-cache entries by key only: an entry key is an HMAC under
 * a tenant's key, so without Query or Scan a role cannot enumerate another tenant's entries.
 */
export const CACHE_ENTRY_ACTIONS = ['dynamodb:GetItem', 'dynamodb:PutItem'] as const;

/**
 * The vault reads a tenant's usage records for the console and the CLI export: one key range per
 * query (partition `REQ#<tenant>`, the tenant taken from the verified token). Query only: no item
 * read by key, no scan, no write.
 */
export const USAGE_QUERY_ACTIONS = ['dynamodb:Query'] as const;

/** Router and vault read a tenant's erasure key by key (the router inside its one BatchGetItem). */
export const ERASURE_KEY_READ_ACTIONS = ['dynamodb:GetItem', 'dynamodb:BatchGetItem'] as const;

/**
 * The vault creates a tenant's erasure key on its first seal: a conditional PutItem inside a
 * transaction that checks the tenant is active. No delete, no update.
 */
export const ERASURE_KEY_CREATE_ACTIONS = ['dynamodb:PutItem', 'dynamodb:GetItem'] as const;

/** Offboarding destroys a tenant's erasure key (admin): DeleteItem only, no read. */
export const ERASURE_KEY_DESTROY_ACTIONS = ['dynamodb:DeleteItem'] as const;

/**
 * Refused to every principal by the erasure-key table's resource policy: any way of making a
 * copy that would outlive a deleted key (on-demand and AWS Backup backups, PITR, exports,
 * restores).
 */
export const ERASURE_KEY_DENIED_COPY_ACTIONS = [
  'dynamodb:CreateBackup',
  'dynamodb:StartAwsBackupJob',
  'dynamodb:UpdateContinuousBackups',
  'dynamodb:ExportTableToPointInTime',
  'dynamodb:RestoreTableToPointInTime',
  'dynamodb:RestoreTableFromBackup',
] as const;

/** Audit events are appended, never updated or deleted, by any function. */
export const AUDIT_APPEND_ACTIONS = ['dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:GetItem'] as const;

/** Read-only access to a table for operators' tools (usage reports, audit reads); no write. */
export const TABLE_QUERY_ACTIONS = ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query', 'dynamodb:DescribeTable'] as const;

/** Calling the cell's API Gateway routes with SigV4. */
export const API_INVOKE_ACTIONS = ['execute-api:Invoke'] as const;

/** CloudWatch and EventBridge publishing to the SSE-KMS alarm topic. */
export const ALARM_KEY_SERVICE_ACTIONS = ['kms:Decrypt', 'kms:GenerateDataKey*'] as const;

/**
 * The router's only write to the tokens table: the on-use pepper upgrade moves a token record it
 * has just authenticated to its verifier under the current pepper (one transaction: Put the new
 * key if absent, Delete the old one if unchanged). No UpdateItem, no batch writes.
 */
export const TOKEN_VERIFIER_MOVE_ACTIONS = ['dynamodb:PutItem', 'dynamodb:DeleteItem'] as const;

/** The admin function counts tokens per pepper version (pepper status): a scan of the tokens table. */
export const TOKEN_INVENTORY_ACTIONS = ['dynamodb:Scan'] as const;

/** The admin function rotates the pepper: a new secret version (Secrets Manager moves AWSCURRENT/AWSPREVIOUS). */
export const PEPPER_ROTATE_ACTIONS = ['secretsmanager:PutSecretValue'] as const;

/** Access to the pepper secret. */
export const SECRET_READ_ACTIONS = ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'] as const;

/** A function writing to its own log group. */
export const LOG_WRITE_ACTIONS = ['logs:CreateLogStream', 'logs:PutLogEvents'] as const;

/** X-Ray tracing from Lambda; these actions do not support resource-level permissions. */
export const XRAY_WRITE_ACTIONS = ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'] as const;


/** Appending to the audit trail: MAC each event with the audit key (never verify-by-reuse, never any other use). */
export const AUDIT_KEY_APPEND_ACTIONS = ['kms:GenerateMac'] as const;

/** Verifying the audit trail: check MACs; cannot create one. */
export const AUDIT_KEY_VERIFY_ACTIONS = ['kms:VerifyMac'] as const;

/** Writing a chain-head anchor: only a new object (the bucket policy requires If-None-Match: *). */
export const ANCHOR_WRITE_ACTIONS = ['s3:PutObject'] as const;

/** Reading anchors and every version of them, to see any attempt to rewrite one. */
export const ANCHOR_READ_OBJECT_ACTIONS = ['s3:GetObject', 's3:GetObjectVersion'] as const;
export const ANCHOR_LIST_ACTIONS = ['s3:ListBucket', 's3:ListBucketVersions'] as const;

/**
 * Refused to every principal by the anchor bucket's policy: deleting an anchor or a version of
 * it, and loosening its lock. (Object Lock in compliance mode refuses most of these anyway until
 * retention ends; the policy also covers the time after, and names the intent.)
 */
export const ANCHOR_DENIED_ACTIONS = [
  's3:DeleteObject',
  's3:DeleteObjectVersion',
  's3:PutObjectRetention',
  's3:PutObjectLegalHold',
  's3:BypassGovernanceRetention',
] as const;

/**
 * Amazon Bedrock through the router's own role (providers of kind `bedrock` with `auth: 'iam'`):
 * Converse needs InvokeModel and ConverseStream InvokeModelWithResponseStream. Granted on the
 * listed foundation models of the cell's region only, never `*` and never an inference profile.
 */
export const BEDROCK_INVOKE_ACTIONS = ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'] as const;

/**
 * Amazon Bedrock Guardrails as a tenant guardrail (policy `guardrails.bedrock`): the router calls
 * ApplyGuardrail with its own role, on the guardrails listed in `bedrockGuardrails`, in the cell's
 * region only. Nothing to create, change or read guardrails.
 */
export const BEDROCK_APPLY_GUARDRAIL_ACTIONS = ['bedrock:ApplyGuardrail'] as const;
