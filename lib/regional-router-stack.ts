import { Aspects, CfnOutput, Stack, StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { RegionalRouter, RegionalRouterProps } from './regional-router';
import { ResidencyGuard } from './residency-guard';

export interface RegionalRouterStackProps extends StackProps, RegionalRouterProps {}

/** A stack holding exactly one regional cell, guarded against cross-region data paths. */
export class RegionalRouterStack extends Stack {
  public readonly router: RegionalRouter;

  constructor(scope: Construct, id: string, props: RegionalRouterStackProps) {
    super(scope, id, props);
    if (!props.env?.region) {
      throw new Error(`RegionalRouterStack '${id}' needs env.region: a cell belongs to exactly one region.`);
    }
    this.router = new RegionalRouter(this, 'Cell', props);
    Aspects.of(this).add(new ResidencyGuard());
    new CfnOutput(this, 'EndpointUrl', { value: this.router.endpointUrl, description: 'Base URL for OpenAI/Anthropic SDKs' });
    new CfnOutput(this, 'RootKeyArn', { value: this.router.rootKey.keyArn });
  }
}
