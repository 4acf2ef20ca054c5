import { Duration } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { METRICS_NAMESPACE } from '../lambda/core/router/metrics';

export interface RouterObservabilityProps {
  readonly region: string;
  readonly api: apigateway.RestApi;
  readonly router: lambda.IFunction;
  readonly vault: lambda.IFunction;
  readonly admin: lambda.IFunction;
  /**
   * Topic notified when an alarm fires or recovers.
   * @default - alarms without actions
   */
  readonly alarmTopic?: sns.ITopic;
}

/**
 * The cell's dashboard and alarms, built on the router's embedded-metric-format line (requests
 * by decision and provider, latency, time to first token, tokens, cost) and on Lambda and API
 * Gateway metrics.
 */
export class RouterObservability extends Construct {
  public readonly dashboard: cloudwatch.Dashboard;
  public readonly alarms: cloudwatch.Alarm[];

  constructor(scope: Construct, id: string, props: RouterObservabilityProps) {
    super(scope, id);
    const period = Duration.minutes(5);
    const emf = (metricName: string, statistic: string, dimensions: Record<string, string> = {}) =>
      new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName, statistic, period, dimensionsMap: { Region: props.region, ...dimensions } });
    const decision = (d: string) => emf('Requests', 'Sum', { Decision: d });

    const routerErrors = new cloudwatch.Alarm(this, 'RouterErrors', {
      alarmDescription: 'Router function errors (unhandled failures on the data path)',
      metric: props.router.metricErrors({ period }),
      threshold: 5,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const api5xx = new cloudwatch.Alarm(this, 'Api5xx', {
      alarmDescription: 'API Gateway 5xx answers',
      metric: props.api.metricServerError({ period, statistic: 'Sum' }),
      threshold: 10,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const upstream = new cloudwatch.Alarm(this, 'UpstreamFailures', {
      alarmDescription: 'Requests no provider could serve (all targets failed or the deadline passed)',
      metric: decision('failed'),
      threshold: 20,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const throttles = new cloudwatch.Alarm(this, 'RouterThrottles', {
      alarmDescription: 'Router invocations throttled by Lambda concurrency',
      metric: props.router.metricThrottles({ period }),
      threshold: 1,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.alarms = [routerErrors, api5xx, upstream, throttles];
    if (props.alarmTopic) {
      for (const alarm of this.alarms) {
        alarm.addAlarmAction(new actions.SnsAction(props.alarmTopic));
        alarm.addOkAction(new actions.SnsAction(props.alarmTopic));
      }
    }

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `sovereign-router-${props.region}`,
      widgets: [
        [
          new cloudwatch.GraphWidget({ title: 'Requests by decision', left: ['ok', 'denied', 'failed', 'client_error', 'upstream_stream_broken'].map(decision), width: 12 }),
          new cloudwatch.GraphWidget({ title: 'Latency and time to first token (p50, p95)', left: [emf('Latency', 'p50'), emf('Latency', 'p95'), emf('TimeToFirstToken', 'p50'), emf('TimeToFirstToken', 'p95')], width: 12 }),
        ],
        [
          new cloudwatch.GraphWidget({ title: 'Tokens', left: [emf('InputTokens', 'Sum'), emf('OutputTokens', 'Sum')], width: 8 }),
          new cloudwatch.GraphWidget({ title: 'Cost (USD) and fallbacks', left: [emf('CostUsd', 'Sum')], right: [emf('Fallbacks', 'Sum')], width: 8 }),
          new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 8 }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Functions: errors and throttles',
            left: [props.router, props.vault, props.admin].map((f) => f.metricErrors({ period })),
            right: [props.router.metricThrottles({ period })],
            width: 12,
          }),
          new cloudwatch.GraphWidget({ title: 'API Gateway: 4xx, 5xx', left: [props.api.metricClientError({ period }), props.api.metricServerError({ period })], width: 12 }),
        ],
      ],
    });
  }
}
