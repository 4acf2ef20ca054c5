/**
 * Composing the regional cell in your own stack: one `new` gives a safe cell; every resource is
 * exposed for your own wiring (alarms, extra grants, WAF).
 */
import { App, Aspects, CfnOutput, Duration, Stack, StackProps } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { RegionalRouter, ResidencyGuard } from '../lib';

export class AiGatewayStack extends Stack {
  public readonly cell: RegionalRouter;

  constructor(scope: Construct, id: string, props: StackProps) {
    super(scope, id, props);
    this.cell = new RegionalRouter(this, 'Cell', {
      providers: {
        openai: { kind: 'openai', baseUrl: 'https://eu.api.openai.com' },
        anthropic: { kind: 'anthropic', baseUrl: 'https://api.anthropic.com' },
        vllm: { kind: 'openai-compatible', baseUrl: 'https://llm.internal.example.com' },
      },
      throttle: { rateLimit: 50, burstLimit: 100 },
      requestDeadline: Duration.minutes(2),
    });
    // Your own alarm on the router's errors, next to the construct's defaults.
    new cloudwatch.Alarm(this, 'RouterErrors', {
      metric: this.cell.routerFunction.metricErrors({ period: Duration.minutes(5) }),
      threshold: 5,
      evaluationPeriods: 1,
    });
    new CfnOutput(this, 'BaseUrl', { value: this.cell.endpointUrl });
    // Keep the residency guarantee in your stack too.
    Aspects.of(this).add(new ResidencyGuard());
  }
}

if (require.main === module) {
  const app = new App();
  new AiGatewayStack(app, 'AiGateway', { env: { region: 'eu-central-1' } });
  app.synth();
}
