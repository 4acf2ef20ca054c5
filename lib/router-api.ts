import { Lazy, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import { RequestSizeWebAcl } from './request-size-web-acl';

export interface RouterApiThrottle {
  /** Steady-state requests per second for the whole stage. */
  readonly rateLimit: number;
  /** Burst capacity for the whole stage. */
  readonly burstLimit: number;
}

export interface RouterApiProps {
  readonly router: lambda.IFunction;
  readonly vault: lambda.IFunction;
  readonly admin: lambda.IFunction;
  /**
   * The root-key migration function, served at `/admin/root-key/*` (AWS_IAM like all of /admin).
   * @default - no root-key routes
   */
  readonly rootKeyMigration?: lambda.IFunction;
  /** Encrypts the access-log group. */
  readonly logKey: kms.IKey;
  /** Retention of the access logs. */
  readonly logRetention: logs.RetentionDays;
  /**
   * Stage throttling.
   * @default { rateLimit: 100, burstLimit: 200 }
   */
  readonly throttle?: RouterApiThrottle;
  /**
   * Stage name; clients use `https://<api>/<stage>/v1` as their base URL.
   * @default 'prod'
   */
  readonly stageName?: string;
  /**
   * ARN of a regional WAFv2 web ACL to associate with the stage.
   * @default - no web ACL
   */
  readonly webAclArn?: string;
  /**
   * When no `webAclArn` is given, create a WAF web ACL that answers 413 to requests whose
   * Content-Length exceeds `maxRequestBytes`, before any function runs.
   * @default true
   */
  readonly requestSizeWebAcl?: boolean;
  /**
   * Largest request body, in bytes (the size web ACL's limit).
   * @default 1048576
   */
  readonly maxRequestBytes?: number;
  /**
   * Principals allowed on `/admin` (besides needing IAM permission). When given, the API's
   * resource policy denies `/admin` to every other principal; principals passed to
   * `RouterApi.allowAdminPrincipal` join the list.
   * @default - any principal of this account whose IAM policy allows execute-api:Invoke on it
   */
  readonly adminPrincipals?: iam.IPrincipal[];
}

/** Access-log fields: who called what and how it ended. Never bodies, never headers. */
const ACCESS_LOG_FORMAT = {
  requestId: '$context.requestId',
  ip: '$context.identity.sourceIp',
  caller: '$context.identity.caller',
  user: '$context.identity.user',
  requestTime: '$context.requestTime',
  httpMethod: '$context.httpMethod',
  resourcePath: '$context.resourcePath',
  status: '$context.status',
  protocol: '$context.protocol',
  responseLength: '$context.responseLength',
  integrationLatency: '$context.integration.latency',
  errorMessage: '$context.error.message',
};

/**
 * The regional REST API. OpenAI- and Anthropic-compatible routes go to the router in STREAM
 * mode, `/vault/*` to the vault (tenant tokens), `/console/*` to the vault's static console assets,
 * `/admin/*` to the admin function behind AWS_IAM.
 */
export class RouterApi extends Construct {
  public readonly restApi: apigateway.RestApi;
  public readonly accessLogs: logs.ILogGroup;
  /** The request-size web ACL, when the construct created one. */
  public readonly requestSizeAcl?: RequestSizeWebAcl;
  private readonly adminPrincipalArns: string[] = [];
  private readonly restrictAdminPrincipals: boolean;

  constructor(scope: Construct, id: string, props: RouterApiProps) {
    super(scope, id);
    const throttle = props.throttle ?? { rateLimit: 100, burstLimit: 200 };
    if (!(throttle.rateLimit > 0) || !(throttle.burstLimit > 0)) {
      throw new Error(`RouterApiProps.throttle needs positive limits, got rate ${throttle.rateLimit} burst ${throttle.burstLimit}`);
    }
    const stageName = props.stageName ?? 'prod';
    if (!/^[A-Za-z0-9_]{1,64}$/.test(stageName)) {
      throw new Error(`RouterApiProps.stageName '${stageName}' must be 1-64 letters, digits or '_'`);
    }

    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.logRetention,
      encryptionKey: props.logKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.restrictAdminPrincipals = (props.adminPrincipals?.length ?? 0) > 0;
    for (const p of props.adminPrincipals ?? []) this.allowAdminPrincipal(p);

    this.restApi = new apigateway.RestApi(this, 'Api', {
      description: 'sovereign-router regional gateway',
      endpointConfiguration: { types: [apigateway.EndpointType.REGIONAL] },
      cloudWatchRole: false,
      deployOptions: {
        stageName,
        throttlingRateLimit: throttle.rateLimit,
        throttlingBurstLimit: throttle.burstLimit,
        tracingEnabled: true,
        dataTraceEnabled: false,
        metricsEnabled: true,
        accessLogDestination: new apigateway.LogGroupLogDestination(this.accessLogs),
        accessLogFormat: apigateway.AccessLogFormat.custom(JSON.stringify(ACCESS_LOG_FORMAT)),
      },
    });

    const streaming = new apigateway.LambdaIntegration(props.router, {
      proxy: true,
      responseTransferMode: apigateway.ResponseTransferMode.STREAM,
    });
    const v1 = this.restApi.root.addResource('v1');
    const tenantMethods: apigateway.Method[] = [
      v1.addResource('chat').addResource('completions').addMethod('POST', streaming),
      v1.addResource('embeddings').addMethod('POST', streaming),
      v1.addResource('models').addMethod('GET', streaming),
      v1.addResource('messages').addMethod('POST', streaming),
      v1.addResource('responses').addMethod('POST', streaming),
    ];

    // Tenant self-service: authenticated in the function by a tenant-admin token.
    const vaultIntegration = new apigateway.LambdaIntegration(props.vault);
    const vault = this.restApi.root.addResource('vault');
    const vaultProxy = vault.addProxy({ defaultIntegration: vaultIntegration, anyMethod: true });
    tenantMethods.push(vaultProxy.anyMethod!);

    // Tenant console: static assets bundled into the vault function (GET only). The page holds no
    // data; its calls to /vault/* carry the tenant-admin token from memory in the Authorization header.
    const consoleRoot = this.restApi.root.addResource('console');
    const consoleMethods = [consoleRoot.addMethod('GET', vaultIntegration), consoleRoot.addResource('{asset}').addMethod('GET', vaultIntegration)];

    // Operators: every admin route requires SigV4 (AWS_IAM).
    const admin = this.restApi.root.addResource('admin', {
      defaultMethodOptions: { authorizationType: apigateway.AuthorizationType.IAM },
    });
    const adminProxy = admin.addProxy({ defaultIntegration: new apigateway.LambdaIntegration(props.admin), anyMethod: true });
    const adminMethods = [adminProxy.anyMethod!];
    if (props.rootKeyMigration) {
      const rootKey = admin.addResource('root-key');
      const rootKeyProxy = rootKey.addProxy({ defaultIntegration: new apigateway.LambdaIntegration(props.rootKeyMigration), anyMethod: true });
      adminMethods.push(rootKeyProxy.anyMethod!);
    }

    this.addResourcePolicy();

    const webAclArn = props.webAclArn ?? (props.requestSizeWebAcl === false ? undefined : this.createSizeAcl(props.maxRequestBytes ?? 1024 * 1024));
    if (webAclArn) {
      new wafv2.CfnWebACLAssociation(this, 'WebAcl', {
        resourceArn: this.restApi.deploymentStage.stageArn,
        webAclArn,
      });
    } else {
      Validations.of(this.restApi.deploymentStage).acknowledge({
        id: 'AwsSolutions::AwsSolutions-APIG3',
        reason: 'WAF was turned off (requestSizeWebAcl: false, no webAclArn); stage throttling and per-tenant rate limits apply without it.',
      });
    }
    Validations.of(this.restApi.deploymentStage).acknowledge({
      id: 'AwsSolutions::AwsSolutions-APIG6',
      reason:
        'Execution logging stays off so that no request data can reach logs and no account-wide API Gateway role is needed; access logs (no bodies, no headers) are on.',
    });
    Validations.of(this.restApi).acknowledge({
      id: 'AwsSolutions::AwsSolutions-APIG2',
      reason: 'Proxy integrations: every function validates its request (size cap, JSON schema) and answers 4xx with a clear message.',
    });
    for (const method of tenantMethods) {
      Validations.of(method).acknowledge(
        {
          id: 'AwsSolutions::AwsSolutions-APIG4',
          reason: 'Tenant routes authenticate a tenant token (format, region, CRC, then HMAC verifier lookup) inside the function before any other work.',
        },
        {
          id: 'AwsSolutions::AwsSolutions-COG4',
          reason: 'Tenants are machine clients of the OpenAI/Anthropic SDKs using bearer tokens, not Cognito users.',
        },
      );
    }
    for (const method of consoleMethods) {
      Validations.of(method).acknowledge(
        {
          id: 'AwsSolutions::AwsSolutions-APIG4',
          reason: 'Public static console assets (HTML, JS, CSS) with no data; every data call the page makes goes to /vault/* with a tenant-admin token.',
        },
        {
          id: 'AwsSolutions::AwsSolutions-COG4',
          reason: 'The console signs in with a tenant-admin bearer token held in page memory, not with Cognito users.',
        },
      );
    }
    for (const method of adminMethods) {
      Validations.of(method).acknowledge({
        id: 'AwsSolutions::AwsSolutions-COG4',
        reason: 'Admin routes use AWS_IAM (SigV4) authorization for operators instead of Cognito.',
      });
    }
  }

  /**
   * Adds a principal to the `/admin` allow list of the resource policy (only effective when the
   * list is in use, i.e. `adminPrincipals` was given). The principal still needs IAM permission.
   */
  public allowAdminPrincipal(principal: iam.IPrincipal): void {
    const aws = principal.policyFragment.principalJson.AWS as string[] | undefined;
    if (!aws || aws.length === 0) {
      throw new Error(`RouterApi: admin principal ${principal} is not an AWS principal (role, user or account) with an ARN`);
    }
    this.adminPrincipalArns.push(...aws);
  }

  private createSizeAcl(maxRequestBytes: number): string {
    const acl = new RequestSizeWebAcl(this, 'RequestSize', { maxRequestBytes });
    (this as { requestSizeAcl?: RequestSizeWebAcl }).requestSizeAcl = acl;
    return acl.webAcl.attrArn;
  }

  /**
   * Resource policy: tenant routes stay open to the internet (tokens are checked in the
   * functions); `/admin` is denied to principals of other accounts and, when an allow list is
   * configured, to every principal not on it. `/admin` gets no Allow here, so within the account
   * the caller's own IAM policy decides.
   */
  private addResourcePolicy(): void {
    const account = Stack.of(this).account;
    const adminPaths = ['execute-api:/*/*/admin', 'execute-api:/*/*/admin/*'];
    // Every top-level path except /admin (called at the end of the constructor, after all routes).
    const tenantPaths = this.restApi.root.node.children
      .filter((c): c is apigateway.Resource => c instanceof apigateway.Resource && c.path !== '/admin')
      .flatMap((r) => [`execute-api:/*/*${r.path}`, `execute-api:/*/*${r.path}/*`]);
    this.restApi.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'TenantRoutesAuthenticatedByTokenInTheFunction',
        principals: [new iam.AnyPrincipal()],
        actions: ['execute-api:Invoke'],
        resources: tenantPaths,
      }),
    );
    this.restApi.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AdminOnlyFromThisAccount',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['execute-api:Invoke'],
        resources: adminPaths,
        conditions: { StringNotEquals: { 'aws:PrincipalAccount': account } },
      }),
    );
    if (this.restrictAdminPrincipals) {
      this.restApi.addToResourcePolicy(
        new iam.PolicyStatement({
          sid: 'AdminOnlyForListedPrincipals',
          effect: iam.Effect.DENY,
          principals: [new iam.AnyPrincipal()],
          actions: ['execute-api:Invoke'],
          resources: adminPaths,
          conditions: { ArnNotLike: { 'aws:PrincipalArn': Lazy.list({ produce: () => [...this.adminPrincipalArns] }) } },
        }),
      );
    }
  }
}
