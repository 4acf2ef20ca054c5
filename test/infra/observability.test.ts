import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as sns from 'aws-cdk-lib/aws-sns';
import { RegionalRouter } from '../../lib';

let template: Template;
beforeAll(() => {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Obs', { env: { region: 'eu-central-1' } });
  const topic = new sns.Topic(stack, 'Ops');
  new RegionalRouter(stack, 'Cell', { providers: { openai: { kind: 'openai', baseUrl: 'https://api.openai.com' } }, alarmTopic: topic });
  template = Template.fromStack(stack);
});

test('a dashboard built on the router metrics (embedded metric format)', () => {
  template.hasResourceProperties('AWS::CloudWatch::Dashboard', {
    DashboardName: 'sovereign-router-eu-central-1',
    DashboardBody: Match.objectLike({ 'Fn::Join': Match.arrayWith([Match.arrayWith([Match.stringLikeRegexp('SovereignRouter.*TimeToFirstToken')])]) }),
  });
});

test('alarms on router errors, API 5xx, upstream failures and throttles, each notifying the topic', () => {
  const alarms = template.findResources('AWS::CloudWatch::Alarm');
  expect(Object.keys(alarms)).toHaveLength(4);
  for (const alarm of Object.values(alarms)) {
    expect(alarm.Properties.AlarmActions).toEqual([{ Ref: expect.stringMatching(/^Ops/) }]);
    expect(alarm.Properties.OKActions).toEqual([{ Ref: expect.stringMatching(/^Ops/) }]);
  }
  template.hasResourceProperties('AWS::CloudWatch::Alarm', {
    Namespace: 'SovereignRouter',
    MetricName: 'Requests',
    Dimensions: Match.arrayWith([{ Name: 'Decision', Value: 'failed' }]),
  });
  template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: '5XXError', Namespace: 'AWS/ApiGateway' });
});
