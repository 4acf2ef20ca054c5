import { RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { ALARM_KEY_SERVICE_ACTIONS, KEY_ADMIN_ACTIONS } from './private/iam-actions';

export interface CellAlarmTopicProps {
  /** Administrators of the topic's key (manage, never use). */
  readonly keyAdmins: iam.IPrincipal[];
}

/**
 * The cell's alarm topic when the user brings none: SSE with a key of its own (not the storage
 * key, so that CloudWatch and EventBridge never need a statement on a key that protects data),
 * TLS-only publishing. Subscribe your on-call address or endpoint to it.
 */
export class CellAlarmTopic extends Construct {
  public readonly topic: sns.Topic;
  public readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: CellAlarmTopicProps) {
    super(scope, id);
    this.key = new kms.Key(this, 'Key', {
      description: 'sovereign-router alarm topic encryption (alarm and guard notifications only)',
      enableKeyRotation: true,
      multiRegion: false,
      removalPolicy: RemovalPolicy.DESTROY,
      policy: new iam.PolicyDocument({
        statements: [
          new iam.PolicyStatement({ sid: 'KeyAdministrationWithoutUse', principals: props.keyAdmins, actions: [...KEY_ADMIN_ACTIONS], resources: ['*'] }),
          // CloudWatch alarms and EventBridge rules publish to the encrypted topic.
          new iam.PolicyStatement({
            sid: 'AlarmPublishers',
            principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com'), new iam.ServicePrincipal('events.amazonaws.com')],
            actions: [...ALARM_KEY_SERVICE_ACTIONS],
            resources: ['*'],
          }),
        ],
      }),
    });
    this.topic = new sns.Topic(this, 'Topic', { displayName: 'sovereign-router alarms', masterKey: this.key, enforceSSL: true });
  }
}
