/**
 * The server-rendered pages of the authorization endpoint: login and consent, and the error page shown
 * when a request cannot be sent back to its client. No script; every value is HTML-escaped.
 */
import type { OAuthClientRecord } from '../store/store.js';
import type { AuthorizationRequest } from './authorize-request.js';
import { SCOPES, formatScope } from './scopes.js';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Headers of every page: never cached, never framed (clickjacking, RFC 6749 §10.13), no referrer. */
export const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  pragma: 'no-cache',
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
} as const;

const STYLE = `body{font:16px/1.5 system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}
h1{font-size:1.3rem}ul{padding-left:1.2rem}label{display:block;margin:.6rem 0 .2rem}
input[type=email],input[type=password]{width:100%;padding:.4rem;box-sizing:border-box}
.buttons{margin-top:1.2rem;display:flex;gap:.8rem}button{padding:.5rem 1.2rem}.error{color:#a00}.uri{color:#555;font-size:.85rem;word-break:break-all}`;

function page(title: string, body: string): string {
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body>\n${body}\n</body></html>\n`;
}

function hidden(name: string, value: string | undefined): string {
  return value === undefined ? '' : `<input type="hidden" name="${name}" value="${escapeHtml(value)}">\n`;
}

export function consentPage(o: { client: OAuthClientRecord; request: AuthorizationRequest; csrf: string; error?: string; email?: string }): string {
  const r = o.request;
  const name = escapeHtml(o.client.name);
  const scopes = r.scopes.map((s) => `<li>${escapeHtml(SCOPES[s])} <code>${s}</code></li>`).join('\n');
  return page(`Allow ${o.client.name}?`, `<h1><strong>${name}</strong> wants to access your cloudrest account</h1>
<p>If you allow it, ${name} may:</p>
<ul>
${scopes}
</ul>
<p class="uri">You will be sent back to ${escapeHtml(r.redirectUri)}</p>
${o.error ? `<p class="error" role="alert">${escapeHtml(o.error)}</p>\n` : ''}<form method="post" action="/v1/oauth/authorize">
${hidden('response_type', 'code')}${hidden('client_id', r.clientId)}${hidden('redirect_uri', r.redirectUri)}${hidden('scope', formatScope(r.scopes))}${hidden('state', r.state)}${hidden('code_challenge', r.codeChallenge)}${hidden('code_challenge_method', r.codeChallenge === undefined ? undefined : 'S256')}${hidden('csrf', o.csrf)}<label for="email">Email</label>
<input id="email" type="email" name="email" autocomplete="username" maxlength="254" required value="${escapeHtml(o.email ?? '')}">
<label for="password">Password</label>
<input id="password" type="password" name="password" autocomplete="current-password" maxlength="1024" required>
<div class="buttons">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny" formnovalidate>Deny</button>
</div>
</form>`);
}

export function errorPage(code: string, message: string): string {
  return page('Authorization failed', `<h1>This authorization request cannot be completed</h1>
<p class="error">${escapeHtml(message)}</p>
<p><code>${escapeHtml(code)}</code></p>
<p>The application that sent you here is misconfigured, or the link was altered. Nothing was shared.</p>`);
}
