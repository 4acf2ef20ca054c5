import { Annotations, CfnResource, IAspect, Stack, Token } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

/** Resource types that exist to copy data or keys to other regions. */
const CROSS_REGION_TYPES: Readonly<Record<string, string>> = {
  'AWS::KMS::ReplicaKey': 'a KMS replica key copies key material to another region',
  'AWS::DynamoDB::GlobalTable': 'a global table replicates items to other regions',
  'Custom::DynamoDBReplica': 'a table replica copies items to another region',
};

/** Properties that name a replication target, by resource type. */
const REPLICATION_PROPERTIES: Readonly<Record<string, readonly string[]>> = {
  'AWS::SecretsManager::Secret': ['ReplicaRegions'],
  'AWS::S3::Bucket': ['ReplicationConfiguration'],
  'AWS::DynamoDB::Table': ['Replicas', 'KinesisStreamSpecification'],
  'AWS::ECR::ReplicationConfiguration': ['ReplicationConfiguration'],
};

/**
 * Region references in the rendered properties: an ARN's `:<service>:<region>:` piece (also when
 * CDK split the ARN around the partition token) and regional service endpoints.
 */
const REGION_REFERENCES = [/:[a-z0-9-]+:([a-z]{2}(?:-gov)?-[a-z]+-\d):/g, /\.([a-z]{2}(?:-gov)?-[a-z]+-\d)\.amazonaws\.com/g];

/**
 * Fails synthesis (error annotations) when anything in a regional stack would move data or key
 * material out of its region: multi-Region KMS keys, replicas, global tables, replication
 * settings, or a literal ARN that points at another region.
 */
export class ResidencyGuard implements IAspect {
  public visit(node: IConstruct): void {
    if (!(node instanceof CfnResource)) return;
    // The cell applies the guard to itself and a stack may apply it too: report each resource once.
    if (CHECKED.has(node)) return;
    CHECKED.add(node);
    const stack = Stack.of(node);
    const region = stack.region;
    const type = node.cfnResourceType;
    const path = node.node.path;
    if (Token.isUnresolved(region)) {
      Annotations.of(node).addError(`Residency: ${path} is in a stack without a concrete region; set env.region.`);
      return;
    }
    const fail = (why: string) =>
      Annotations.of(node).addError(`Residency violation in ${region}: ${path} (${type}): ${why}`);

    if (CROSS_REGION_TYPES[type]) fail(CROSS_REGION_TYPES[type]);
    const props = (stack.resolve((node as unknown as { _toCloudFormation(): unknown })._toCloudFormation()) as {
      Resources?: Record<string, { Properties?: Record<string, unknown> }>;
    }).Resources;
    const properties = props ? Object.values(props)[0]?.Properties ?? {} : {};

    if (type === 'AWS::KMS::Key' && properties.MultiRegion === true) {
      fail('a multi-Region KMS key can be replicated out of the region; use a single-Region key');
    }
    for (const name of REPLICATION_PROPERTIES[type] ?? []) {
      if (properties[name] !== undefined) fail(`property ${name} sends data out of the cell`);
    }
    const text = JSON.stringify(properties);
    for (const pattern of REGION_REFERENCES) {
      for (const match of text.matchAll(pattern)) {
        if (match[1] !== region) fail(`it references ${match[1]} (${match[0]})`);
      }
    }
  }
}

const CHECKED = new WeakSet<CfnResource>();
