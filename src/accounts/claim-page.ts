/**
 * The pages behind a device claim link (issue 12): accept the device (with the account's password) or
 * decline it. Same page frame and headers as the confirmation pages (confirmation-page.ts): no script,
 * `Referrer-Policy: no-referrer` since the URL carries the claim id. Forms post to `ownership`, relative
 * to the page's own path, so they work behind a proxy that adds a path prefix.
 */
import { esc, page } from './confirmation-page.js';

/** The device a page names, as the device calls itself (bounded, one line) and by id. */
function deviceLabel(name: string, id: string): string {
  return name !== id ? `<strong>${esc(name)}</strong> (${esc(id)})` : `<strong>${esc(id)}</strong>`;
}

export function claimForm(claimId: string, email: string, device: { id: string; name: string }, error?: string): string {
  return page('A device asks to join your account', `<p>The device ${deviceLabel(device.name, device.id)} names <strong>${esc(email)}</strong> as its owner.
It is added to your account only if you accept it; once added it receives your requests to it, and any device password you give it.</p>
${error ? `<p class="error" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="ownership">
<input type="hidden" name="claimId" value="${esc(claimId)}">
<input type="hidden" name="decision" value="accept">
<input type="hidden" name="email" value="${esc(email)}" autocomplete="username">
<label for="password">Your password, to accept it</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Accept this device</button>
</form>
<form method="post" action="ownership">
<input type="hidden" name="claimId" value="${esc(claimId)}">
<input type="hidden" name="decision" value="decline">
<button type="submit">Decline: this is not my device</button>
</form>`);
}

export function claimDecidedPage(decision: 'accepted' | 'declined', device: { id: string; name: string }): string {
  return decision === 'accepted'
    ? page('Device added', `<p>${deviceLabel(device.name, device.id)} is yours now: it is among your devices.</p>`)
    : page('Device declined', `<p>${deviceLabel(device.name, device.id)} was not added to your account, and does not ask again while it names your address.</p>`);
}
