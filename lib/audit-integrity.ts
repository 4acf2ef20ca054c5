import { Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct, IConstruct } from 'constructs';
import { ANCHOR_PREFIX } from '../lambda/core/audit-anchor-format';
import {
  ANCHOR_DENIED_ACTIONS,
  ANCHOR_LIST_ACTIONS,
  ANCHOR_READ_OBJECT_ACTIONS,
  ANCHOR_WRITE_ACTIONS,
  AUDIT_KEY_APPEND_ACTIONS,
  AUDIT_KEY_VERIFY_ACTIONS,
  KEY_ADMIN_ACTIONS,
} from './private/iam-actions';

export interface AuditIntegrityProps {
  /**
   * Administrators of the audit key: manage, never use.
   * @default - the account root, delegating key administration (and nothing else) to IAM
   */
  readonly keyAdmins?: iam.IPrincipal[];
  /**
   * How long each anchor is locked (Object Lock, compliance mode): nobody, the account root
   * included, can delete or shorten it before then.
   * @default Duration.days(365)
   */
  readonly anchorRetention?: Duration;
  /**
   * Removal policy of the audit key. The anchor bucket is always retained: its locked objects
   * cannot be deleted before their retention ends.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * What makes the audit trail tamper-evident beyond the tables: an HMAC key in KMS (single-Region,
 * HMAC_256) whose MACs authenticate every event, usable only through `grantAppend` (GenerateMac)
 * and `grantVerify` (VerifyMac); and an S3 bucket with Object Lock in compliance mode, in the
 * cell's region, holding one write-once anchor per event. Writers may only create anchors that
 * do not exist yet; no principal may delete one or loosen its lock.
 */
export class AuditIntegrity extends Construct {
  public readonly auditKey: kms.IKey;
  public readonly anchorBucket: s3.IBucket;

  private readonly keyResource: kms.Key;
  private readonly bucketResource: s3.Bucket;
  private grantCount = 0;

  constructor(scope: Construct, id: string, props: AuditIntegrityProps = {}) {
    super(scope, id);
    const stack = Stack.of(this);
    if (Token.isUnresolved(stack.region)) throw new Error(`AuditIntegrity '${this.node.path}' needs a stack with a concrete region (env.region)`);
    if (props.keyAdmins !== undefined && props.keyAdmins.length === 0) throw new Error('AuditIntegrityProps.keyAdmins must name at least one administrator when given.');
    const retention = props.anchorRetention ?? Duration.days(365);
    const days = retention.toDays({ integral: false });
    if (!Number.isInteger(days) || days < 1 || days > 36500) {
      throw new Error(`AuditIntegrityProps.anchorRetention must be a whole number of days between 1 and 36500, got ${days}`);
    }

    this.keyResource = new kms.Key(this, 'Key', {
      description: `sovereign-router audit MAC key in ${stack.region} (single-Region, HMAC_256)`,
      keySpec: kms.KeySpec.HMAC_256,
      keyUsage: kms.KeyUsage.GENERATE_VERIFY_MAC,
      multiRegion: false,
      enableKeyRotation: false,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
      policy: new iam.PolicyDocument({
        statements: [
          new iam.PolicyStatement({
            sid: 'AuditKeyAdministrationWithoutUse',
            principals: props.keyAdmins ?? [new iam.AccountRootPrincipal()],
            actions: [...KEY_ADMIN_ACTIONS],
            resources: ['*'],
          }),
        ],
      }),
    });
    this.auditKey = this.keyResource;

    this.bucketResource = new s3.Bucket(this, 'Anchors', {
      versioned: true,
      objectLockEnabled: true,
      objectLockDefaultRetention: s3.ObjectLockRetention.compliance(Duration.days(days)),
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.anchorBucket = this.bucketResource;
    this.bucketResource.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AnchorsAreWrittenOnlyIfAbsent',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: [...ANCHOR_WRITE_ACTIONS],
        resources: [this.bucketResource.arnForObjects('*')],
        conditions: { Null: { 's3:if-none-match': 'true' } },
      }),
    );
    this.bucketResource.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AnchorsAreNeverDeletedOrUnlocked',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: [...ANCHOR_DENIED_ACTIONS],
        resources: [this.bucketResource.arnForObjects('*')],
      }),
    );
    Validations.of(this.bucketResource).acknowledge({
      id: 'AwsSolutions::AwsSolutions-S1',
      reason:
        'Anchors are written once and can be neither overwritten nor deleted (Object Lock, compliance mode, and the bucket policy); record access with CloudTrail S3 data events on this bucket rather than server access logs, which would need another bucket in the region.',
    });
  }

  /**
   * Lets the grantee append to the audit trail: `kms:GenerateMac` (HMAC_SHA_256) on the audit
   * key, and `s3:PutObject` of new anchors (the bucket refuses any put without If-None-Match: *).
   */
  public grantAppend(grantee: iam.IGrantable): iam.Grant {
    this.grantKey(grantee, 'AppendAuditEvents', AUDIT_KEY_APPEND_ACTIONS);
    this.acknowledgeAnchorPrefix(grantee);
    return iam.Grant.addToPrincipal({
      grantee,
      actions: [...ANCHOR_WRITE_ACTIONS],
      resourceArns: [this.bucketResource.arnForObjects(`${ANCHOR_PREFIX}*`)],
    });
  }

  /**
   * Lets the grantee verify the audit trail: `kms:VerifyMac` on the audit key, and reading the
   * anchors with every version of them. It cannot create a MAC or write an anchor.
   */
  public grantVerify(grantee: iam.IGrantable): iam.Grant {
    this.grantKey(grantee, 'VerifyAuditEvents', AUDIT_KEY_VERIFY_ACTIONS);
    this.acknowledgeAnchorPrefix(grantee);
    iam.Grant.addToPrincipal({
      grantee,
      actions: [...ANCHOR_LIST_ACTIONS],
      resourceArns: [this.bucketResource.bucketArn],
      conditions: { StringLike: { 's3:prefix': [`${ANCHOR_PREFIX}*`] } },
    });
    return iam.Grant.addToPrincipal({
      grantee,
      actions: [...ANCHOR_READ_OBJECT_ACTIONS],
      resourceArns: [this.bucketResource.arnForObjects(`${ANCHOR_PREFIX}*`)],
    });
  }

  /** Anchor names are `<prefix><tenant>/<seq>.json`, created at run time: the wildcard is the prefix. */
  private acknowledgeAnchorPrefix(grantee: iam.IGrantable): void {
    if (!(grantee instanceof Construct)) return;
    const bucketId = Stack.of(this).getLogicalId(this.bucketResource.node.defaultChild as s3.CfnBucket);
    Validations.of(grantee as IConstruct).acknowledge({
      id: `AwsSolutions::AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/${ANCHOR_PREFIX}*]`,
      reason: 'Anchors are one object per tenant and event, named at run time; the wildcard covers only the anchor prefix of this cell\'s anchor bucket, and the bucket refuses overwrites and deletes.',
    });
  }

  /** Key-policy statement naming the principal (the policy delegates no use to IAM), plus the identity-side copy. */
  private grantKey(grantee: iam.IGrantable, purpose: string, actions: readonly string[]): iam.Grant {
    const conditions = { StringEquals: { 'kms:MacAlgorithm': 'HMAC_SHA_256' } };
    this.keyResource.addToResourcePolicy(
      new iam.PolicyStatement({ sid: `${purpose}${++this.grantCount}`, principals: [grantee.grantPrincipal], actions: [...actions], resources: ['*'], conditions }),
    );
    return iam.Grant.addToPrincipal({ grantee, actions: [...actions], resourceArns: [this.auditKey.keyArn], conditions });
  }
}
