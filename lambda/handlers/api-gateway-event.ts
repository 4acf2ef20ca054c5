import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { withRequestId, type HttpRequest, type HttpResponse } from '../core/http';
import type { Logger } from '../core/logger';

/** API Gateway proxy event to the transport-neutral request (header names lower-cased). */
export function toHttpRequest(event: APIGatewayProxyEvent): HttpRequest {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(event.headers ?? {})) if (v !== undefined) headers[k.toLowerCase()] = v;
  const body =
    event.body === null || event.body === undefined
      ? undefined
      : event.isBase64Encoded
        ? Buffer.from(event.body, 'base64').toString('utf8')
        : event.body;
  return {
    method: event.httpMethod,
    path: event.path,
    headers,
    query: event.queryStringParameters ?? undefined,
    body,
    sourceIp: event.requestContext?.identity?.sourceIp ?? undefined,
    iamCaller: event.requestContext?.identity?.userArn ?? undefined,
    requestId: event.requestContext?.requestId ?? undefined,
  };
}

export function toProxyResult(res: HttpResponse): APIGatewayProxyResult {
  return { statusCode: res.status, headers: { ...res.headers }, body: res.body };
}

/**
 * The Lambda handler of a buffered (non-streaming) app behind API Gateway: a request id on every
 * answer and one log line per request; `logCaller` adds the IAM caller (SigV4-only APIs).
 */
export function proxyHandler(
  app: (req: HttpRequest) => Promise<HttpResponse>,
  log: Logger,
  opts: { readonly logCaller?: boolean } = {},
): (event: APIGatewayProxyEvent) => Promise<APIGatewayProxyResult> {
  return async (event) => {
    const started = Date.now();
    const req = toHttpRequest(event);
    const { requestId, res } = withRequestId(req, await app(req));
    const caller = opts.logCaller ? { caller: event.requestContext?.identity?.userArn ?? undefined } : {};
    log.info('request', { requestId, method: event.httpMethod, resource: event.resource, status: res.status, latencyMs: Date.now() - started, ...caller });
    return toProxyResult(res);
  };
}
