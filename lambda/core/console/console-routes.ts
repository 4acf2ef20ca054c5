/**
 * The tenant console's static assets, served by the vault function at `/console/`. The page holds
 * no data and no secret: it signs in by sending the tenant-admin token in the Authorization header
 * of each `/vault/*` call, from memory, so serving it needs no authentication.
 */
import type { HttpRequest, HttpResponse } from '../http';
import { CONSOLE_ASSETS } from './assets.generated';

/**
 * Strict policy: scripts and styles from this origin only (no inline code, no style attributes in
 * markup), API calls to this origin only, no framing, no plugins, no form posts anywhere.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "object-src 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

export const CONSOLE_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
  'strict-transport-security': 'max-age=63072000; includeSubDomains',
};

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

/** The console's response for a GET under /console, or undefined for any other request. */
export function serveConsole(req: HttpRequest): HttpResponse | undefined {
  const path = req.path.split('?')[0];
  if (path !== '/console' && !path.startsWith('/console/')) return undefined;
  const method = req.method.toUpperCase();
  if (method !== 'GET' && method !== 'HEAD') {
    return text(405, 'Method not allowed.', { allow: 'GET, HEAD' });
  }
  // Relative asset and API URLs resolve from /console/, also behind an API Gateway stage prefix.
  if (path === '/console') return text(308, 'Moved to console/.', { location: 'console/' });
  const name = path === '/console/' ? 'index.html' : path.slice('/console/'.length);
  const asset = Object.prototype.hasOwnProperty.call(CONSOLE_ASSETS, name) ? CONSOLE_ASSETS[name as keyof typeof CONSOLE_ASSETS] : undefined;
  if (!asset) return text(404, 'Not found.');
  const ext = name.slice(name.lastIndexOf('.') + 1);
  return {
    status: 200,
    headers: {
      ...CONSOLE_SECURITY_HEADERS,
      'content-type': CONTENT_TYPES[ext] ?? 'application/octet-stream',
      // Small assets, revalidated on every load so a deployment is picked up at once.
      'cache-control': name === 'index.html' ? 'no-store' : 'no-cache',
      etag: `"${asset.sha256.slice(0, 32)}"`,
    },
    body: method === 'HEAD' ? '' : asset.body,
  };
}

function text(status: number, body: string, extra: Record<string, string> = {}): HttpResponse {
  return { status, headers: { ...CONSOLE_SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...extra }, body };
}
