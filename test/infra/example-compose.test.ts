import { Annotations, Template, Match } from 'aws-cdk-lib/assertions';
import { App } from 'aws-cdk-lib';
import { AiGatewayStack } from '../../examples/compose-stack';

// The README's composition example compiles (tsc runs over examples/) and synthesizes a guarded cell.
test('the composition example synthesizes a cell with its own alarm and no residency errors', () => {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new AiGatewayStack(app, 'AiGateway', { env: { region: 'eu-central-1' } });
  const template = Template.fromStack(stack);
  template.resourceCountIs('AWS::KMS::Key', 4); // root, storage, audit MAC, alarm topic
  template.hasResourceProperties('AWS::CloudWatch::Alarm', { Threshold: 5 });
  template.hasResourceProperties('AWS::ApiGateway::Stage', {
    MethodSettings: Match.arrayWith([Match.objectLike({ ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 })]),
  });
  expect(Annotations.fromStack(stack).findError('*', Match.anyValue())).toEqual([]);
});
