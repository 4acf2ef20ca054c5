/**
 * The console's only path to data: `fetch` to this origin's /vault routes with the tenant-admin
 * token in the Authorization header. The token lives in this module's closure: never in storage,
 * cookies or URLs, gone when the tab closes or the user signs out.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Api {
  signIn(token: string): void;
  signOut(): void;
  readonly signedIn: boolean;
  call<T>(method: string, path: string, body?: unknown): Promise<T>;
}

export function createApi(base: URL): Api {
  let token: string | undefined;
  return {
    signIn(t: string) {
      token = t;
    },
    signOut() {
      token = undefined;
    },
    get signedIn() {
      return token !== undefined;
    },
    async call<T>(method: string, path: string, body?: unknown): Promise<T> {
      if (token === undefined) throw new ApiError(401, 'signed_out', 'Sign in with a tenant-admin token first.');
      const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json' };
      if (body !== undefined) headers['content-type'] = 'application/json';
      let res: Response;
      try {
        res = await fetch(new URL(path, base), {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          // No cookies exist to send; say so anyway, and never follow a redirect with the header.
          credentials: 'omit',
          cache: 'no-store',
          redirect: 'error',
          referrerPolicy: 'no-referrer',
        });
      } catch {
        throw new ApiError(0, 'network', 'The gateway cannot be reached.');
      }
      const text = await res.text();
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      if (!res.ok) {
        const e = (json as { error?: { message?: string; code?: string } } | undefined)?.error;
        throw new ApiError(res.status, e?.code ?? 'http_error', e?.message ?? `HTTP ${res.status}`);
      }
      return json as T;
    },
  };
}
