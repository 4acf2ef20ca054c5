/** Vault views: tokens, provider secrets, policy and limits, audit trail. */
import type { Api } from './api';
import { byId, clear, h, table, when } from './dom';
import { lastUsedBySecret, UsageRow } from './stats';

export interface TokenView {
  tokenId: string;
  role: string;
  label?: string;
  limits?: Record<string, unknown>;
  createdAt: string;
}
interface SecretView {
  provider: string;
  name: string;
  version: number;
  fingerprint: string;
  sovereign?: boolean;
  createdAt: string;
  rotatedAt?: string;
}
interface AuditEvent {
  seq: number;
  at: string;
  type: string;
  actor: string;
  details: Record<string, string | number | boolean>;
}
export interface PolicyView {
  tenantId: string;
  region: string;
  mode: string;
  status: string;
  policy: Record<string, unknown> & { monthlyBudgetUsd?: number; routes?: Record<string, { provider: string; model: string; secret?: string }[]> };
  token: TokenView;
}

type Notify = (message: string, kind?: 'ok' | 'error') => void;

function limitsText(l: Record<string, unknown> | undefined): string {
  if (!l || Object.keys(l).length === 0) return 'tenant limits';
  return Object.entries(l)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`)
    .join('; ');
}

/** Shows a new token once; "Done" removes it from the page and from memory. */
function showOnce(token: string, tokenId: string): void {
  const box = byId('token-once');
  clear(box);
  const field = h('input', { type: 'text', readonly: true, id: 'new-token', 'aria-label': 'New token', autocomplete: 'off', spellcheck: 'false' });
  field.value = token;
  const done = h('button', { type: 'button', id: 'token-done' }, 'Done, I stored it');
  done.addEventListener('click', () => {
    field.value = '';
    clear(box);
    box.hidden = true;
  });
  box.append(h('p', {}, `Token ${tokenId}: copy it now. It is shown only once and cannot be shown again.`), field, done);
  box.hidden = false;
  field.select();
}

/** Renders the token list and the timeline's token filter; returns the tokens. */
export async function renderTokens(api: Api, notify: Notify): Promise<TokenView[]> {
  const res = await api.call<{ data: TokenView[] }>('GET', 'vault/tokens');
  const host = byId('token-list');
  clear(host);
  host.appendChild(
    table(
      ['Token id', 'Role', 'Label', 'Limits', 'Created', ''],
      res.data.map((t) => {
        const rotate = h('button', { type: 'button', 'data-action': 'rotate', 'data-token': t.tokenId }, 'Rotate');
        const revoke = h('button', { type: 'button', class: 'danger', 'data-action': 'revoke', 'data-token': t.tokenId }, 'Revoke');
        rotate.addEventListener('click', () => {
          void (async () => {
            if (!confirm(`Rotate ${t.tokenId}? The old token stops working at once.`)) return;
            try {
              const out = await api.call<{ token: string; tokenId: string }>('POST', `vault/tokens/${encodeURIComponent(t.tokenId)}/rotate`);
              showOnce(out.token, out.tokenId);
              await renderTokens(api, notify);
              notify(`Rotated ${t.tokenId} into ${out.tokenId}.`);
            } catch (err) {
              notify((err as Error).message, 'error');
            }
          })();
        });
        revoke.addEventListener('click', () => {
          void (async () => {
            if (!confirm(`Revoke ${t.tokenId}? Requests with it fail from now on.`)) return;
            try {
              await api.call('DELETE', `vault/tokens/${encodeURIComponent(t.tokenId)}`);
              await renderTokens(api, notify);
              notify(`Revoked ${t.tokenId}.`);
            } catch (err) {
              notify((err as Error).message, 'error');
            }
          })();
        });
        return [t.tokenId, t.role, t.label ?? '', limitsText(t.limits), when(t.createdAt), h('span', { class: 'actions' }, rotate, revoke)];
      }),
    ),
  );
  const select = byId<HTMLSelectElement>('f-token');
  const current = select.value;
  clear(select);
  select.append(h('option', { value: '' }, 'all tokens'), ...res.data.map((t) => h('option', { value: t.tokenId }, `${t.tokenId}${t.label ? ` (${t.label})` : ''}`)));
  select.value = res.data.some((t) => t.tokenId === current) ? current : '';
  onTokens?.(res.data);
  return res.data;
}

let onTokens: ((tokens: TokenView[]) => void) | undefined;
/** Lets the timeline know each token's own limits (its budget line when filtered to it). */
export function watchTokens(fn: (tokens: TokenView[]) => void): void {
  onTokens = fn;
}

function numberOrUndefined(id: string): number | undefined {
  const v = byId<HTMLInputElement>(id).value.trim();
  return v === '' ? undefined : Number(v);
}

function listOrUndefined(id: string): string[] | undefined {
  const v = byId<HTMLInputElement>(id).value.trim();
  return v === '' ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean);
}

export function wireTokenForm(api: Api, notify: Notify): void {
  const form = byId<HTMLFormElement>('token-form');
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void (async () => {
      const limits = Object.fromEntries(
        Object.entries({
          monthlyBudgetUsd: numberOrUndefined('t-budget'),
          rpm: numberOrUndefined('t-rpm'),
          tpm: numberOrUndefined('t-tpm'),
          maxTokens: numberOrUndefined('t-max-tokens'),
          allowedModels: listOrUndefined('t-models'),
          ipAllowlist: listOrUndefined('t-ips'),
        }).filter(([, v]) => v !== undefined),
      );
      const label = byId<HTMLInputElement>('t-label').value.trim();
      try {
        const out = await api.call<{ token: string; tokenId: string }>('POST', 'vault/tokens', {
          role: byId<HTMLSelectElement>('t-role').value,
          ...(label ? { label } : {}),
          ...(Object.keys(limits).length ? { limits } : {}),
        });
        form.reset();
        showOnce(out.token, out.tokenId);
        notify(`Created ${out.tokenId}.`);
        await renderTokens(api, notify);
      } catch (err) {
        notify((err as Error).message, 'error');
      }
    })();
  });
}

export async function renderSecrets(api: Api, notify: Notify, rows: readonly UsageRow[]): Promise<void> {
  const res = await api.call<{ data: SecretView[] }>('GET', 'vault/secrets');
  const lastUsed = lastUsedBySecret(rows);
  const host = byId('secret-list');
  clear(host);
  host.appendChild(
    table(
      ['Provider', 'Name', 'Version', 'Fingerprint', 'Created', 'Rotated', 'Last used (loaded period)', 'Rotate'],
      res.data.map((s) => {
        // A paste field that is cleared as soon as the request is sent, whatever its outcome.
        const field = h('input', { type: 'password', autocomplete: 'off', placeholder: 'paste the new key', 'aria-label': `New key for ${s.provider}/${s.name}`, 'data-secret': `${s.provider}/${s.name}` });
        const send = h('button', { type: 'button', 'data-action': 'rotate-secret', 'data-secret': `${s.provider}/${s.name}` }, 'Rotate');
        send.addEventListener('click', () => {
          const apiKey = field.value;
          field.value = '';
          if (!apiKey) return notify('Paste the new provider key first.', 'error');
          void (async () => {
            try {
              const out = await api.call<SecretView>('PUT', `vault/secrets/${encodeURIComponent(s.provider)}/${encodeURIComponent(s.name)}`, { apiKey });
              await renderSecrets(api, notify, rows);
              notify(`Rotated ${s.provider}/${s.name} to version ${out.version}.`);
            } catch (err) {
              notify((err as Error).message, 'error');
            }
          })();
        });
        return [s.provider, s.name, String(s.version), h('code', {}, s.fingerprint), when(s.createdAt), when(s.rotatedAt), when(lastUsed.get(`${s.provider}/${s.name}`)), h('span', { class: 'actions' }, field, send)];
      }),
    ),
  );
}

export function renderPolicy(p: PolicyView): void {
  const host = byId('policy-view');
  clear(host);
  const pol = p.policy;
  const rows: [string, string][] = [
    ['Tenant', `${p.tenantId} (${p.mode}, ${p.status}) in ${p.region}`],
    ['Monthly budget', pol.monthlyBudgetUsd === undefined ? 'none' : `$${pol.monthlyBudgetUsd}`],
    ['Requests per minute', pol.rpm === undefined ? 'unlimited' : String(pol.rpm)],
    ['Tokens per minute', pol.tpm === undefined ? 'unlimited' : String(pol.tpm)],
    ['Max tokens per request', pol.maxTokens === undefined ? 'no cap' : String(pol.maxTokens)],
    ['Allowed models', Array.isArray(pol.allowedModels) ? pol.allowedModels.join(', ') : 'all'],
    ['IP allowlist', Array.isArray(pol.ipAllowlist) ? pol.ipAllowlist.join(', ') : 'any'],
    ['Your token', `${p.token.tokenId} (${p.token.role}): ${limitsText(p.token.limits)}`],
  ];
  host.appendChild(table(['Setting', 'Value'], rows));
  const routes = Object.entries(pol.routes ?? {});
  host.appendChild(h('h3', {}, 'Routes (model alias → targets in fallback order)'));
  host.appendChild(routes.length ? table(['Alias', 'Targets'], routes.map(([alias, ts]) => [alias, ts.map((t) => `${t.provider}/${t.model}${t.secret ? ` [${t.secret}]` : ''}`).join(' → ')])) : h('p', { class: 'empty' }, 'No routes: model names go to the provider that serves them.'));
}

export async function renderAudit(api: Api): Promise<void> {
  const res = await api.call<{ data: AuditEvent[]; total: number; verification: { ok: boolean; events: number; anchoredThrough: number; firstBad?: { seq?: number; message: string }; unanchored: number[] } }>('GET', 'vault/audit');
  const v = res.verification;
  const banner = byId('audit-verification');
  banner.className = v.ok ? 'verify ok' : 'verify broken';
  banner.textContent = v.ok
    ? `Chain verified: ${v.events} events, each authenticated with the cell's audit key and matched against its write-once anchors (through #${v.anchoredThrough})${v.unanchored.length ? `; not anchored: ${v.unanchored.map((s) => `#${s}`).join(', ')}` : ''}.`
    : `Chain BROKEN${v.firstBad?.seq !== undefined ? ` at event ${v.firstBad.seq}` : ''}: ${v.firstBad?.message ?? 'unknown'}.`;
  const host = byId('audit-list');
  clear(host);
  host.appendChild(
    table(
      ['#', 'Time (UTC)', 'Event', 'Actor', 'Details'],
      res.data.map((e) => [String(e.seq), when(e.at), e.type, e.actor, Object.entries(e.details).map(([k, val]) => `${k}=${String(val)}`).join(' ')]),
    ),
  );
}
