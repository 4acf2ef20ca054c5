import { Annotations, CfnResource, IAspect, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { IConstruct } from 'constructs';
import { KeyHierarchy, RootKeyStatementPurpose } from './key-hierarchy';
import { KEY_ADMIN_ACTIONS, ROOT_KEY_LIFECYCLE_ACTIONS, ROOT_KEY_OPEN_ACTIONS, ROOT_KEY_REWRAP_FROM_ACTIONS, ROOT_KEY_REWRAP_TO_ACTIONS, ROOT_KEY_SEAL_ACTIONS } from './private/iam-actions';

interface RenderedStatement {
  Sid?: string;
  Effect?: string;
  Action?: string | string[];
  NotAction?: unknown;
  Resource?: unknown;
  Principal?: unknown;
}

const ADMIN_ACTIONS = new Set<string>(KEY_ADMIN_ACTIONS);
const EXPECTED: Readonly<Record<RootKeyStatementPurpose, ReadonlySet<string>>> = {
  open: new Set(ROOT_KEY_OPEN_ACTIONS),
  seal: new Set(ROOT_KEY_SEAL_ACTIONS),
  'additional-decryptor': new Set(ROOT_KEY_OPEN_ACTIONS),
  'key-lifecycle': new Set(ROOT_KEY_LIFECYCLE_ACTIONS),
  administration: ADMIN_ACTIONS,
  // ReEncrypt without Decrypt: moves wrapped data keys between root keys, never sees one.
  migrate: new Set([...ROOT_KEY_REWRAP_FROM_ACTIONS, ...ROOT_KEY_REWRAP_TO_ACTIONS]),
};

/**
 * Fails synthesis when the rendered templates give anyone a cryptographic action on a cell's
 * root key outside the separation of duties: a key-policy statement that `KeyHierarchy` did not
 * create (escape hatches and property overrides included), a registered statement that gained
 * actions, or an IAM policy that names the root key for a role other than the router (open) or
 * the vault (seal). Applied by `RegionalRouter` to its own scope and its stack's IAM policies.
 */
export class KeySeparationGuard implements IAspect {
  public visit(node: IConstruct): void {
    // Each cell adds the guard to its stack: check each resource once.
    if (CHECKED.has(node)) return;
    CHECKED.add(node);
    if (node instanceof kms.CfnKey) this.checkKeyPolicy(node);
    else if (node instanceof iam.CfnPolicy || node instanceof iam.CfnManagedPolicy) this.checkIdentityPolicy(node);
  }

  private checkKeyPolicy(key: kms.CfnKey): void {
    const owner = KeyHierarchy.ownerOfRootKey(key);
    if (!owner) return;
    const registered = new Map(owner.rootKeyStatements.map((s) => [s.sid, s]));
    for (const st of statementsOf(rendered(key).KeyPolicy)) {
      if (st.Effect !== 'Allow') continue;
      const where = `root key ${key.node.path}, statement ${st.Sid ?? '(no Sid)'}`;
      if (st.NotAction !== undefined) {
        fail(key, `${where} uses NotAction, which grants every other action (cryptographic ones included)`);
        continue;
      }
      const actions = asList(st.Action);
      const entry = st.Sid ? registered.get(st.Sid) : undefined;
      const allowed = entry ? EXPECTED[entry.purpose] : ADMIN_ACTIONS;
      const extra = actions.filter((a) => !allowed.has(a));
      if (extra.length > 0) {
        fail(
          key,
          `${where} grants ${extra.join(', ')} outside the separation of duties (only the router may Decrypt, only the vault GenerateDataKey; ` +
            `declare any other decryptor with RegionalRouterProps.additionalDecryptors)`,
        );
      }
    }
  }

  private checkIdentityPolicy(policy: iam.CfnPolicy | iam.CfnManagedPolicy): void {
    const stack = Stack.of(policy);
    const owners = stack.node
      .findAll()
      .filter((c): c is kms.CfnKey => c instanceof kms.CfnKey)
      .map((k) => ({ key: k, owner: KeyHierarchy.ownerOfRootKey(k) }))
      .filter((k): k is { key: kms.CfnKey; owner: KeyHierarchy } => k.owner !== undefined);
    if (owners.length === 0) return;
    const props = rendered(policy);
    const attachedTo = [props.Roles, props.Users, props.Groups].flatMap((v) => (Array.isArray(v) ? v : [])).map((v) => JSON.stringify(v));
    for (const { key, owner } of owners) {
      const keyRef = JSON.stringify({ 'Fn::GetAtt': [stack.getLogicalId(key), 'Arn'] });
      for (const st of statementsOf(props.PolicyDocument)) {
        if (st.Effect !== 'Allow' || !JSON.stringify(st.Resource ?? '').includes(keyRef)) continue;
        const crypto = asList(st.Action).filter((a) => !ADMIN_ACTIONS.has(a));
        if (crypto.length === 0) continue;
        const legit = owner.rootKeyStatements.some(
          (s) =>
            (s.purpose === 'open' || s.purpose === 'seal' || s.purpose === 'additional-decryptor' || s.purpose === 'migrate' || s.purpose === 'key-lifecycle') &&
            crypto.every((a) => EXPECTED[s.purpose].has(a)) &&
            'roleName' in s.principal &&
            attachedTo.length === 1 &&
            attachedTo[0] === JSON.stringify(stack.resolve((s.principal as iam.IRole).roleName)),
        );
        if (!legit) {
          fail(
            policy,
            `IAM policy ${policy.node.path} grants ${crypto.join(', ')} on the root key ${key.node.path}; the key policy decides who uses the root key ` +
              `(router: Decrypt, vault: GenerateDataKey). Use RegionalRouterProps.additionalDecryptors for a declared exception.`,
          );
        }
      }
    }
  }
}

function rendered(resource: CfnResource): Record<string, unknown> {
  const stack = Stack.of(resource);
  const cfn = stack.resolve((resource as unknown as { _toCloudFormation(): unknown })._toCloudFormation()) as {
    Resources?: Record<string, { Properties?: Record<string, unknown> }>;
  };
  return Object.values(cfn.Resources ?? {})[0]?.Properties ?? {};
}

function statementsOf(doc: unknown): RenderedStatement[] {
  const statements = (doc as { Statement?: unknown } | undefined)?.Statement;
  return Array.isArray(statements) ? (statements as RenderedStatement[]) : [];
}

function asList(value: unknown): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}

function fail(node: IConstruct, message: string): void {
  Annotations.of(node).addError(`Key separation: ${message}`);
}

const CHECKED = new WeakSet<IConstruct>();
