// Placeholder data path: answers every request with a well-formed 501 until the router lands.
declare const awslambda: {
  streamifyResponse(fn: (event: unknown, stream: NodeJS.WritableStream) => Promise<void>): unknown;
  HttpResponseStream: { from(stream: NodeJS.WritableStream, meta: { statusCode: number; headers: Record<string, string> }): NodeJS.WritableStream };
};

export const handler = awslambda.streamifyResponse(async (_event, responseStream) => {
  const out = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 501,
    headers: { 'content-type': 'application/json' },
  });
  out.end(JSON.stringify({ error: { message: 'The router data path is not deployed yet.', type: 'server_error', code: 'not_implemented' } }));
});
