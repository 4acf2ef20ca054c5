import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import type { HttpRequest, HttpResponse } from '../core/http';

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
