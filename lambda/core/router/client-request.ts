import { ApiError, HttpRequest, parseJsonBody, withoutTrailingSlashes } from '../http';
import { isRecord } from '../translate/guards';

export type ApiRoute = 'chat' | 'messages' | 'embeddings' | 'models' | 'responses';

export interface ClientRequest {
  readonly route: ApiRoute;
  readonly body: Record<string, unknown>;
  readonly model: string;
  readonly stream: boolean;
  readonly maxTokens?: number;
  /** Rough prompt size for worst-case budgeting: bytes / 4. */
  readonly promptTokenEstimate: number;
}

const ROUTES: Record<string, { method: string; route: ApiRoute }> = {
  '/v1/chat/completions': { method: 'POST', route: 'chat' },
  '/v1/messages': { method: 'POST', route: 'messages' },
  '/v1/embeddings': { method: 'POST', route: 'embeddings' },
  '/v1/models': { method: 'GET', route: 'models' },
  '/v1/responses': { method: 'POST', route: 'responses' },
};

/** The request's path without its query and trailing slashes (what routes are matched on). */
export function routePath(path: string): string {
  const q = path.indexOf('?');
  const bare = q < 0 ? path : path.slice(0, q);
  return withoutTrailingSlashes(bare);
}

/** Which API a request is for; 404/405 otherwise. Runs before anything else. */
export function routeOf(req: HttpRequest, path = routePath(req.path)): ApiRoute {
  const entry = Object.prototype.hasOwnProperty.call(ROUTES, path) ? ROUTES[path] : undefined;
  if (!entry) throw new ApiError(404, 'not_found', `No route ${req.method} ${path}.`);
  if (req.method.toUpperCase() !== entry.method) {
    throw new ApiError(405, 'method_not_allowed', `Method ${req.method} is not allowed on ${path}; use ${entry.method}.`);
  }
  return entry.route;
}

const MODEL = /^[\x21-\x7e]{1,200}$/;

function positiveInt(v: unknown, field: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new ApiError(400, 'invalid_request', `${field} must be a positive integer.`);
  }
  return v;
}

/** Size cap, JSON, and the fields the router itself relies on; the provider checks the rest. */
export function parseClientRequest(route: Exclude<ApiRoute, 'models'>, req: HttpRequest, maxBytes: number): ClientRequest {
  const raw = parseJsonBody(req, maxBytes);
  if (!isRecord(raw)) throw new ApiError(400, 'invalid_request', 'The request body must be a JSON object.');
  const model = raw.model;
  if (typeof model !== 'string' || !MODEL.test(model)) {
    throw new ApiError(400, 'invalid_model', 'model must be a non-empty string of printable characters.');
  }
  if (raw.stream !== undefined && typeof raw.stream !== 'boolean') {
    throw new ApiError(400, 'invalid_request', 'stream must be a boolean.');
  }
  const stream = raw.stream === true && route !== 'embeddings';
  let maxTokens: number | undefined;
  if (route === 'chat') {
    if (!Array.isArray(raw.messages) || raw.messages.length === 0) {
      throw new ApiError(400, 'invalid_request', 'messages must be a non-empty array.');
    }
    maxTokens = positiveInt(raw.max_completion_tokens, 'max_completion_tokens') ?? positiveInt(raw.max_tokens, 'max_tokens');
  } else if (route === 'messages') {
    if (!Array.isArray(raw.messages) || raw.messages.length === 0) {
      throw new ApiError(400, 'invalid_request', 'messages must be a non-empty array.');
    }
    maxTokens = positiveInt(raw.max_tokens, 'max_tokens');
    if (maxTokens === undefined) throw new ApiError(400, 'invalid_request', 'max_tokens is required.');
  } else if (route === 'responses') {
    checkResponsesInput(raw.input);
    maxTokens = positiveInt(raw.max_output_tokens, 'max_output_tokens');
  } else {
    const input = raw.input;
    const ok = typeof input === 'string' || (Array.isArray(input) && input.length > 0);
    if (!ok) throw new ApiError(400, 'invalid_request', 'input must be a string or a non-empty array.');
  }
  const promptTokenEstimate = Math.ceil(Buffer.byteLength(req.body ?? '', 'utf8') / 4);
  return { route, body: raw, model, stream, maxTokens, promptTokenEstimate };
}

/** Responses `input`: a string or a non-empty array of item objects (their contents are the target's to judge). */
function checkResponsesInput(input: unknown): void {
  const ok = typeof input === 'string' || (Array.isArray(input) && input.length > 0 && input.every(isRecord));
  if (!ok) throw new ApiError(400, 'invalid_request', 'input must be a string or a non-empty array of input items (objects).');
}
