import { ApiError, HttpRequest, HttpResponse, withoutTrailingSlashes } from './http';

export type RouteHandler = (req: HttpRequest, params: Readonly<Record<string, string>>) => Promise<HttpResponse>;
export type Route = readonly [method: string, pattern: string, handler: RouteHandler];

const PARAM = /^[A-Za-z0-9_.-]{1,128}$/;

function match(pattern: string, path: string): Record<string, string> | undefined {
  const p = pattern.split('/').filter(Boolean);
  const s = path.split('/').filter(Boolean);
  if (p.length !== s.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(':')) {
      let value: string;
      try {
        value = decodeURIComponent(s[i]);
      } catch {
        return undefined;
      }
      if (!PARAM.test(value)) return undefined;
      params[p[i].slice(1)] = value;
    } else if (p[i] !== s[i]) {
      return undefined;
    }
  }
  return params;
}

/** Dispatches to the first matching route: 404 for an unknown path, 405 for a wrong method. */
export async function dispatch(routes: readonly Route[], req: HttpRequest): Promise<HttpResponse> {
  const q = req.path.indexOf('?');
  const path = withoutTrailingSlashes(q < 0 ? req.path : req.path.slice(0, q)) || '/';
  let pathKnown = false;
  for (const [method, pattern, handler] of routes) {
    const params = match(pattern, path);
    if (!params) continue;
    pathKnown = true;
    if (method === req.method.toUpperCase()) return handler(req, params);
  }
  if (pathKnown) throw new ApiError(405, 'method_not_allowed', `Method ${req.method} is not allowed on ${path}.`);
  throw new ApiError(404, 'not_found', `No route ${req.method} ${path}.`);
}
