/**
 * The small HTML pages behind a confirmation link: choose a password, done, or what is wrong with the
 * link. No script, no external resources; served with a CSP that allows only the inline style and a
 * form posting back to this hub, and with `Referrer-Policy: no-referrer`, since the page's own URL
 * carries the confirmation id.
 */

export const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
} as const;

export const MIN_PASSWORD_CHARS = 8;
export const MAX_PASSWORD_CHARS = 1024;

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A whole page around `body` (HTML, escaped by the caller); the claim pages (claim-page.ts) share it. */
export function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · cloudrest</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}label{display:block;margin:.8rem 0 .2rem}
input[type=password]{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}
button{margin-top:1rem;padding:.5rem 1.2rem;font-size:1rem}.error{color:#b00020}
</style></head><body>
<h1>${esc(title)}</h1>
${body}
</body></html>
`;
}

/** The form: choose (and repeat) a password for this email. Posts to POST /v1/confirmation. */
export function passwordForm(confirmationId: string, email: string, error?: string): string {
  return page('Choose your password', `<p>Confirm <strong>${esc(email)}</strong> by choosing the password you will sign in with.</p>
${error ? `<p class="error" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="confirmation">
<input type="hidden" name="confirmationId" value="${esc(confirmationId)}">
<input type="hidden" name="email" value="${esc(email)}" autocomplete="username">
<label for="password">Password (at least ${MIN_PASSWORD_CHARS} characters)</label>
<input type="password" id="password" name="password" minlength="${MIN_PASSWORD_CHARS}" maxlength="${MAX_PASSWORD_CHARS}" autocomplete="new-password" required>
<label for="passwordRepeat">The same password again</label>
<input type="password" id="passwordRepeat" name="passwordRepeat" minlength="${MIN_PASSWORD_CHARS}" maxlength="${MAX_PASSWORD_CHARS}" autocomplete="new-password" required>
<button type="submit">Confirm</button>
</form>`);
}

export function resentPage(email: string): string {
  return page('A new link is on its way', `<p>A new confirmation link was sent to <strong>${esc(email)}</strong>.</p>`);
}

export function confirmedPage(email: string): string {
  return page('Email confirmed', `<p><strong>${esc(email)}</strong> is confirmed. Sign in with it and the password you chose: your devices that name this email are yours now.</p>`);
}

/**
 * A link that leads nowhere; with `resend`, a button asking for a new one (expired links). Its action
 * is relative to the page's own path, so the pages work behind a proxy that adds a path prefix.
 */
export function problemPage(title: string, message: string, resend?: { confirmationId: string; action: string }): string {
  const button = resend
    ? `<form method="post" action="${esc(resend.action)}"><input type="hidden" name="confirmationId" value="${esc(resend.confirmationId)}"><button type="submit">Send me a new link</button></form>`
    : '';
  return page(title, `<p>${esc(message)}</p>${button}`);
}
