/** Tenant console entry: sign-in, navigation and the views. */
import { createApi } from './api';
import { resizeCharts, destroyCharts } from './charts';
import { byId } from './dom';
import { filterParams, loadUsage, monthStartIso, renderTimeline, TimelineState } from './timeline';
import { PolicyView, renderAudit, renderPolicy, renderSecrets, renderTokens, TokenView, watchTokens, wireTokenForm } from './vault-views';

const VIEWS = ['timeline', 'tokens', 'secrets', 'policy', 'audit'] as const;
type View = (typeof VIEWS)[number];

// API routes are siblings of /console/ (also behind an API Gateway stage prefix).
const api = createApi(new URL('../', window.location.href));
let policy: PolicyView | undefined;
let timeline: TimelineState = { rows: [], truncated: false };

function notify(message: string, kind: 'ok' | 'error' = 'ok'): void {
  const el = byId('status');
  el.textContent = message;
  el.className = `status ${kind}`;
}

let tokens: TokenView[] = [];
watchTokens((t) => (tokens = t));

function budgetFor(tokenId: string): number | undefined {
  // A token's own budget when the timeline is filtered to it, else the tenant's.
  const own = tokenId ? (tokens.find((t) => t.tokenId === tokenId)?.limits?.monthlyBudgetUsd as number | undefined) : undefined;
  return own ?? policy?.policy.monthlyBudgetUsd;
}

async function refreshTimeline(): Promise<void> {
  timeline = await loadUsage(api, filterParams());
  renderTimeline(timeline, budgetFor(byId<HTMLSelectElement>('f-token').value));
}

async function show(view: View): Promise<void> {
  for (const v of VIEWS) {
    byId(`view-${v}`).hidden = v !== view;
    byId(`tab-${v}`).setAttribute('aria-selected', String(v === view));
  }
  try {
    if (view === 'timeline') await refreshTimeline();
    else if (view === 'tokens') await renderTokens(api, notify);
    else if (view === 'secrets') await renderSecrets(api, notify, timeline.rows);
    else if (view === 'policy') renderPolicy((policy = await api.call<PolicyView>('GET', 'vault/policy')));
    else await renderAudit(api);
  } catch (err) {
    notify((err as Error).message, 'error');
  }
}

function signOut(message = 'Signed out.'): void {
  api.signOut();
  policy = undefined;
  timeline = { rows: [], truncated: false };
  tokens = [];
  destroyCharts();
  byId('app').hidden = true;
  byId('signin').hidden = false;
  byId('tenant-name').textContent = '';
  notify(message);
}

function wire(): void {
  byId<HTMLInputElement>('f-from').value = monthStartIso();
  byId<HTMLFormElement>('signin-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const field = byId<HTMLInputElement>('admin-token');
    const token = field.value.trim();
    field.value = '';
    if (!token) return notify('Paste a tenant-admin token.', 'error');
    api.signIn(token);
    void (async () => {
      try {
        policy = await api.call<PolicyView>('GET', 'vault/policy');
        byId('tenant-name').textContent = `${policy.tenantId} · ${policy.region} · ${policy.token.tokenId}`;
        byId('signin').hidden = true;
        byId('app').hidden = false;
        notify(`Signed in to ${policy.tenantId}.`);
        // The view switches at once (a later tab click wins); the token filter fills in meanwhile.
        await Promise.all([show('timeline'), renderTokens(api, notify)]);
      } catch (err) {
        signOut((err as Error).message);
        byId('status').className = 'status error';
      }
    })();
  });
  byId('sign-out').addEventListener('click', () => signOut());
  for (const v of VIEWS) byId(`tab-${v}`).addEventListener('click', () => void show(v));
  byId<HTMLFormElement>('filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void show('timeline');
  });
  wireTokenForm(api, notify);
  let pending: number | undefined;
  window.addEventListener('resize', () => {
    window.clearTimeout(pending);
    pending = window.setTimeout(resizeCharts, 150);
  });
}

wire();
