/** JSON calls to a running local gateway (or any base URL), as a client of its HTTP API makes them. */

export interface GatewayReply {
  readonly status: number;
  readonly json: any;
  readonly requestId: string | null;
}

/** One call; the whole answer is read before it returns (answered means: every byte arrived). */
export async function gatewayCall(baseUrl: string, method: string, path: string, body?: unknown, token?: string): Promise<GatewayReply> {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined, requestId: res.headers.get('x-request-id') };
}

/** One call that must succeed: its JSON body, or a throw naming the call and the answer. */
export async function gatewayJson(baseUrl: string, method: string, path: string, body?: unknown, token?: string): Promise<any> {
  const r = await gatewayCall(baseUrl, method, path, body, token);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}
