/**
 * `npm start -- --quickstart`: from provider keys in the environment to a ready invoke token in one
 * command. Through the running gateway's own HTTP API (admin routes, then the vault with the new
 * tenant-admin token), exactly as the CLI would: create a local tenant, seal each key, issue an
 * invoke token. The keys go from this process's environment into one request body on loopback
 * and are sealed there; they are never printed, logged or written anywhere in clear. What is
 * printed: the tenant, the providers, and the two tokens (shown once, as the CLI does).
 */

/** Environment variable → the provider id its key is sealed for. */
export const QUICKSTART_KEYS: Readonly<Record<string, string>> = {
  OPENAI_API_KEY: 'openai',
  ANTHROPIC_API_KEY: 'anthropic',
  MISTRAL_API_KEY: 'mistral',
};

export interface QuickstartOptions {
  /** The gateway, e.g. `http://127.0.0.1:8787`. */
  readonly url: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Provider ids the gateway has; keys for others are skipped. */
  readonly providers: readonly string[];
  /** @default 'local' (then local-2, local-3, ... when it exists) */
  readonly tenant?: string;
  readonly fetch?: typeof fetch;
}

export interface QuickstartResult {
  readonly tenantId: string;
  readonly adminToken: string;
  readonly invokeToken: string;
  /** Provider ids whose key was sealed, with the variable it came from. */
  readonly sealed: readonly { readonly provider: string; readonly variable: string }[];
}

export class QuickstartError extends Error {
  override readonly name = 'QuickstartError';
}

/** The variables of QUICKSTART_KEYS that hold a non-empty value (names only). */
export function quickstartKeysIn(env: Readonly<Record<string, string | undefined>>): string[] {
  return Object.keys(QUICKSTART_KEYS).filter((name) => (env[name] ?? '').trim() !== '');
}

export async function runQuickstart(opts: QuickstartOptions): Promise<QuickstartResult> {
  const doFetch = opts.fetch ?? globalThis.fetch;
  const keys = quickstartKeysIn(opts.env).filter((name) => opts.providers.includes(QUICKSTART_KEYS[name]));
  if (keys.length === 0) {
    throw new QuickstartError(`set ${Object.keys(QUICKSTART_KEYS).join(', ')} (any of them) to use the quick start`);
  }
  const call = async (method: string, path: string, body: unknown, token?: string): Promise<{ status: number; json: Record<string, unknown> }> => {
    const res = await doFetch(`${opts.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    let json: Record<string, unknown> = {};
    try {
      json = (await res.json()) as Record<string, unknown>;
    } catch {
      // not JSON: the status says enough
    }
    return { status: res.status, json };
  };
  // Only the gateway's error code and message: both are written never to quote a key.
  const why = (r: { status: number; json: Record<string, unknown> }) => {
    const e = (r.json.error ?? {}) as { code?: unknown; message?: unknown };
    return `HTTP ${r.status}${typeof e.code === 'string' ? ` ${e.code}` : ''}${typeof e.message === 'string' ? `: ${e.message}` : ''}`;
  };

  // 1. A tenant of its own: 'local', or the next free 'local-N' when an earlier quick start made one.
  const base = opts.tenant ?? 'local';
  let tenantId = base;
  let created;
  for (let n = 1; ; n++) {
    tenantId = n === 1 ? base : `${base}-${n}`;
    created = await call('POST', '/admin/tenants', { tenantId, mode: 'managed', label: 'quick start' });
    if (created.status !== 409 || opts.tenant !== undefined || n >= 50) break;
  }
  if (created.status !== 201 || typeof created.json.token !== 'string') throw new QuickstartError(`could not create tenant '${tenantId}': ${why(created)}`);
  const adminToken = created.json.token;

  // 2. Seal each key in the vault (the environment value goes only into this request body).
  const sealed: { provider: string; variable: string }[] = [];
  for (const variable of keys) {
    const provider = QUICKSTART_KEYS[variable];
    const stored = await call('POST', '/vault/secrets', { provider, apiKey: opts.env[variable]!.trim() }, adminToken);
    if (stored.status !== 201) throw new QuickstartError(`could not seal ${variable} for ${provider}: ${why(stored)}`);
    sealed.push({ provider, variable });
  }

  // 3. The token an application uses.
  const invoke = await call('POST', '/vault/tokens', { role: 'invoke', label: 'quick start' }, adminToken);
  if (invoke.status !== 201 || typeof invoke.json.token !== 'string') throw new QuickstartError(`could not create an invoke token: ${why(invoke)}`);
  return { tenantId, adminToken, invokeToken: invoke.json.token, sealed };
}

/** What the quick start prints (stdout): ready-to-paste lines, never a provider key. */
export function quickstartReport(url: string, r: QuickstartResult): string {
  const sealed = r.sealed.map((s) => `${s.provider} (from ${s.variable})`).join(', ');
  const model = r.sealed.some((s) => s.provider === 'openai') ? 'gpt-4o-mini' : r.sealed.some((s) => s.provider === 'anthropic') ? 'claude-haiku-4-5' : 'mistral-small-latest';
  return `
Quick start: tenant '${r.tenantId}' created; keys sealed for ${sealed}.
Both tokens are shown only this once.
  invoke token (for your applications):
    ${r.invokeToken}
  tenant-admin token (manage keys and tokens: export SR_TOKEN=... for npx sovereign-router):
    ${r.adminToken}

Try it:
  curl -s ${url}/v1/chat/completions -H "Authorization: Bearer ${r.invokeToken}" \\
    -H 'content-type: application/json' -d '{"model":"${model}","messages":[{"role":"user","content":"hello"}]}'
  new OpenAI({ baseURL: '${url}/v1', apiKey: '<invoke token>' })
`;
}

/**
 * After the gateway is up: with `--quickstart`, run it and print the tokens; without it, when keys
 * are in the environment, say (by variable name only) that one command would use them.
 */
export async function quickstartAfterStart(o: {
  readonly url: string;
  readonly providers: readonly string[];
  readonly run: boolean;
  readonly tenant?: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}): Promise<QuickstartResult | undefined> {
  const present = quickstartKeysIn(o.env);
  if (!o.run) {
    if (present.length > 0) {
      o.err(`\n${present.join(', ')} ${present.length === 1 ? 'is' : 'are'} set: \`npm start -- --quickstart\` creates a local tenant, seals ${present.length === 1 ? 'it' : 'them'} and prints an invoke token.`);
    }
    return undefined;
  }
  try {
    const result = await runQuickstart({ url: o.url, env: o.env, providers: o.providers, tenant: o.tenant });
    o.out(quickstartReport(o.url, result));
    return result;
  } catch (err) {
    if (!(err instanceof QuickstartError)) throw err;
    o.err(`quick start: ${err.message}`);
    return undefined;
  }
}
