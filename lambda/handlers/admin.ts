import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';

// Placeholder: answers with a well-formed 501 until the admin use cases land.
export async function handler(_event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  return {
    statusCode: 501,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ error: { message: 'The admin API is not deployed yet.', type: 'server_error', code: 'not_implemented' } }),
  };
}
