/**
 * Turns a synthesized CloudFormation template into concrete IAM documents for the policy
 * simulator: intrinsic functions are resolved with a fixed account and synthetic resource ARNs.
 */
export const TEST_ACCOUNT = '111122223333';

type Json = unknown;
interface CfnResource {
  Type: string;
  Properties?: Record<string, Json>;
}
export interface CfnTemplate {
  Resources: Record<string, CfnResource>;
}

export class TemplateResolver {
  constructor(
    private readonly template: CfnTemplate,
    readonly region: string,
    /** Role names are global: CloudFormation prefixes generated names with the stack name. */
    readonly stackName: string,
    readonly account: string = TEST_ACCOUNT,
  ) {}

  /** The ARN CloudFormation would give a resource, made up from its logical id. */
  arnOf(logicalId: string): string {
    const res = this.template.Resources[logicalId];
    if (!res) throw new Error(`No resource ${logicalId}`);
    const { region, account } = this;
    switch (res.Type) {
      case 'AWS::KMS::Key':
        return `arn:aws:kms:${region}:${account}:key/${logicalId}`;
      case 'AWS::IAM::Role':
        return `arn:aws:iam::${account}:role/${this.stackName}-${logicalId}`;
      case 'AWS::DynamoDB::Table':
        return `arn:aws:dynamodb:${region}:${account}:table/${logicalId}`;
      case 'AWS::Logs::LogGroup':
        return `arn:aws:logs:${region}:${account}:log-group:${logicalId}:*`;
      case 'AWS::SecretsManager::Secret':
        return `arn:aws:secretsmanager:${region}:${account}:secret:${logicalId}-AbCdEf`;
      case 'AWS::Lambda::Function':
        return `arn:aws:lambda:${region}:${account}:function:${logicalId}`;
      case 'AWS::S3::Bucket':
        return `arn:aws:s3:::${logicalId.toLowerCase()}`;
      case 'AWS::ApiGateway::RestApi':
        return `arn:aws:apigateway:${region}::/restapis/${logicalId}`;
      default:
        return `arn:aws:cloudformation:${region}:${account}:resource/${logicalId}`;
    }
  }

  private ref(name: string): string {
    switch (name) {
      case 'AWS::Partition':
        return 'aws';
      case 'AWS::AccountId':
        return this.account;
      case 'AWS::Region':
        return this.region;
      case 'AWS::URLSuffix':
        return 'amazonaws.com';
      case 'AWS::StackName':
        return this.stackName;
    }
    const res = this.template.Resources[name];
    if (!res) throw new Error(`Unresolvable Ref ${name}`);
    // Secrets are referenced by ARN, buckets by their (lower-case) name, everything else by id.
    if (res.Type === 'AWS::S3::Bucket') return name.toLowerCase();
    return res.Type === 'AWS::SecretsManager::Secret' ? this.arnOf(name) : name;
  }

  resolve(value: Json): Json {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (value === null || typeof value !== 'object') return value;
    const obj = value as Record<string, Json>;
    const keys = Object.keys(obj);
    if (keys.length === 1) {
      const [k] = keys;
      const arg = obj[k];
      if (k === 'Ref') return this.ref(arg as string);
      if (k === 'Fn::GetAtt') {
        const [id, attr] = arg as [string, string];
        if (attr === 'Arn') return this.arnOf(id).replace(/:\*$/, this.template.Resources[id]?.Type === 'AWS::Logs::LogGroup' ? ':*' : '');
        throw new Error(`Unsupported GetAtt ${id}.${attr}`);
      }
      if (k === 'Fn::Join') {
        const [sep, parts] = arg as [string, Json[]];
        return (this.resolve(parts) as string[]).join(sep);
      }
      if (k === 'Fn::Select') {
        const [index, list] = arg as [number, Json];
        return (this.resolve(list) as Json[])[Number(index)];
      }
      if (k === 'Fn::Split') {
        const [sep, str] = arg as [string, Json];
        return (this.resolve(str) as string).split(sep);
      }
      if (k.startsWith('Fn::')) throw new Error(`Unsupported intrinsic ${k}`);
    }
    return Object.fromEntries(keys.map((k) => [k, this.resolve(obj[k])]));
  }

  logicalIdsOfType(type: string): string[] {
    return Object.entries(this.template.Resources)
      .filter(([, r]) => r.Type === type)
      .map(([id]) => id);
  }

  /** The resolved key policy of a KMS key. */
  keyPolicy(keyLogicalId: string): Json {
    return this.resolve(this.template.Resources[keyLogicalId].Properties?.KeyPolicy);
  }

  /** The resolved bucket policy of an S3 bucket (AWS::S3::BucketPolicy naming it). */
  bucketPolicy(bucketLogicalId: string): Json {
    const found = Object.values(this.template.Resources).find(
      (r) => r.Type === 'AWS::S3::BucketPolicy' && (r.Properties?.Bucket as { Ref?: string } | undefined)?.Ref === bucketLogicalId,
    );
    if (!found) throw new Error(`No bucket policy for ${bucketLogicalId}`);
    return this.resolve(found.Properties?.PolicyDocument);
  }

  /** Every identity policy attached to a role (inline and AWS::IAM::Policy), resolved. */
  identityPolicies(roleLogicalId: string): { name: string; policy: Json }[] {
    const out: { name: string; policy: Json }[] = [];
    const role = this.template.Resources[roleLogicalId];
    for (const inline of (role.Properties?.Policies as { PolicyName: string; PolicyDocument: Json }[]) ?? []) {
      out.push({ name: inline.PolicyName, policy: this.resolve(inline.PolicyDocument) });
    }
    if (role.Properties?.ManagedPolicyArns) {
      throw new Error(`Role ${roleLogicalId} has managed policies; the simulation would not see them`);
    }
    for (const [id, res] of Object.entries(this.template.Resources)) {
      if (res.Type !== 'AWS::IAM::Policy') continue;
      const roles = (res.Properties?.Roles as { Ref: string }[]) ?? [];
      if (roles.some((r) => r.Ref === roleLogicalId)) {
        out.push({ name: id, policy: this.resolve(res.Properties?.PolicyDocument) });
      }
    }
    return out;
  }
}
