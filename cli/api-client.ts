import { regionOfApiHost, signedHeaders } from './sigv4';

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

export interface ApiClientOptions {
  /** Gateway base, e.g. http://127.0.0.1:8787 or https://abc.execute-api.eu-central-1.amazonaws.com/prod */
  readonly endpoint: string;
  /** Tenant token for /vault routes. */
  readonly token?: string;
  /** Region for SigV4; default from the execute-api host name. */
  readonly region?: string;
  readonly fetch?: typeof fetch;
}

/** Calls the gateway; vault routes with the tenant token, admin routes signed (SigV4) unless local. */
export class ApiClient {
  private readonly base: URL;
  constructor(private readonly opts: ApiClientOptions) {
    try {
      this.base = new URL(opts.endpoint.replace(/\/+$/, '') + '/');
    } catch {
      throw new CliError(`--endpoint '${opts.endpoint}' is not a URL`, 2);
    }
    if (!['http:', 'https:'].includes(this.base.protocol)) throw new CliError('--endpoint must be http(s)', 2);
    if (this.base.protocol === 'http:' && !LOOPBACK.has(this.base.hostname)) {
      throw new CliError('--endpoint must use https unless it is the local gateway on loopback', 2);
    }
  }

  async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const url = new URL(path.replace(/^\//, ''), this.base);
    const text = body === undefined ? undefined : JSON.stringify(body);
    let headers: Record<string, string> = { accept: 'application/json', ...(text ? { 'content-type': 'application/json' } : {}) };
    if (path.startsWith('/vault')) {
      if (!this.opts.token) throw new CliError('this command needs a tenant-admin token: pass --token or set SR_TOKEN', 2);
      headers.authorization = `Bearer ${this.opts.token}`;
    } else if (path.startsWith('/admin') && !LOOPBACK.has(url.hostname)) {
      const region = this.opts.region ?? regionOfApiHost(url.hostname);
      if (!region) throw new CliError('cannot tell the region from the endpoint; pass --region for SigV4', 2);
      headers = await signedHeaders({ url, method, headers, body: text, region });
    }
    let res: Response;
    try {
      res = await (this.opts.fetch ?? fetch)(url, { method, headers, body: text });
    } catch (err) {
      throw new CliError(`cannot reach ${this.base.origin}: ${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message}`);
    }
    const raw = await res.text();
    let json: unknown = raw;
    try {
      json = raw ? JSON.parse(raw) : undefined;
    } catch {
      // keep the text
    }
    if (!res.ok) {
      const e = (json as { error?: { message?: string; code?: string }; message?: string } | undefined) ?? {};
      const message = e.error?.message ?? e.message ?? (typeof json === 'string' ? json.slice(0, 300) : `HTTP ${res.status}`);
      throw new CliError(`${method} ${path} failed (HTTP ${res.status}${e.error?.code ? `, ${e.error.code}` : ''}): ${message}`);
    }
    return json;
  }
}
