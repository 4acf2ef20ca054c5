import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import { greaterThanRegex } from './private/greater-than-regex';

export interface RequestSizeWebAclProps {
  /** Largest request body accepted, in bytes. */
  readonly maxRequestBytes: number;
}

/**
 * A regional WAF web ACL that answers 413 (OpenAI error shape) to any request whose
 * Content-Length exceeds the cell's limit, before API Gateway invokes a function.
 *
 * Limits, stated plainly: REST APIs have no body-size setting of their own (a fixed 10 MB cap),
 * and WAF inspects at most the first 64 KB of a body, so the rule reads the Content-Length
 * header. A chunked request without Content-Length passes this rule; the router and vault then
 * refuse it after reading the body (MAX_REQUEST_BYTES), and Lambda refuses payloads over 6 MB.
 * Sampled requests stay off: samples would store request headers, tokens included.
 */
export class RequestSizeWebAcl extends Construct {
  public readonly webAcl: wafv2.CfnWebACL;

  constructor(scope: Construct, id: string, props: RequestSizeWebAclProps) {
    super(scope, id);
    const body = JSON.stringify({
      error: {
        message: `Request body larger than ${props.maxRequestBytes} bytes`,
        type: 'invalid_request_error',
        code: 'request_too_large',
      },
    });
    this.webAcl = new wafv2.CfnWebACL(this, 'Acl', {
      scope: 'REGIONAL',
      description: `sovereign-router rejects request bodies over ${props.maxRequestBytes} bytes by Content-Length before any function runs`,
      defaultAction: { allow: {} },
      customResponseBodies: { RequestTooLarge: { contentType: 'APPLICATION_JSON', content: body } },
      visibilityConfig: { cloudWatchMetricsEnabled: true, metricName: 'SovereignRouterRequestSize', sampledRequestsEnabled: false },
      rules: [
        {
          name: 'ContentLengthOverLimit',
          priority: 0,
          action: { block: { customResponse: { responseCode: 413, customResponseBodyKey: 'RequestTooLarge' } } },
          statement: {
            regexMatchStatement: {
              fieldToMatch: { singleHeader: { Name: 'content-length' } },
              regexString: greaterThanRegex(props.maxRequestBytes),
              textTransformations: [{ priority: 0, type: 'NONE' }],
            },
          },
          visibilityConfig: { cloudWatchMetricsEnabled: true, metricName: 'SovereignRouterContentLengthOverLimit', sampledRequestsEnabled: false },
        },
      ],
    });
  }
}
