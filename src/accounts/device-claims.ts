/**
 * Pending device ownership (issue 12). A device names its owner by the `email` in its info, but a
 * device that names an address with an account does not join that account on its own say: a planted
 * device would otherwise get its victim's relayed requests, and with `apiAuthPath` the device
 * passwords they type. The Store records the device's claim (Store.updateDeviceInfo); this mails the
 * account a link to accept or decline it, under the same mail limits as registration mails, and the
 * signed-in user sees the claims in `GET /v1/devices/pending`. Until the user accepts, the device's
 * owner stays what it was (none, for a new device): the claimed user cannot list, relay to, subscribe
 * to or authenticate with it.
 *
 * The link proves the mailbox, not the account: accepting through it also takes the account's
 * password (claim-api.ts), since links may be forwarded, and without a mail server they are logged.
 * Declining needs only the link.
 */
import type { Logger } from 'pino';
import { newToken, sha256Hex } from '../core/secrets.js';
import type { Mailer } from '../mail/mailer.js';
import type { ConfirmationRecord, DeviceClaimRecord, DeviceRecord, Store, UserRecord } from '../store/store.js';
import { displayName } from './email.js';
import { mailHeldBack, type MailLimits } from './mail-limits.js';
import { escapeHtml } from './registration.js';

export interface DeviceClaimsOptions extends MailLimits {
  /** How long a mailed link works (--confirmation-ttl-ms). */
  linkTtlMs: number;
}

export interface DeviceClaimsDeps {
  store: Store;
  mailer: Mailer;
  log: Logger;
  /** Base URL of links in mails (--public-url, else the hub's own HTTP URL). */
  publicUrl: () => string;
  /** A device changed owner: caches of who owns it (HTTP, relay, MQTT ACL) must forget it. */
  ownerChanged?: (deviceId: string) => void;
  /** ms since the epoch; tests move it instead of sleeping. */
  clock?: () => number;
}

/** What a claim link leads to; 'used' also when the device no longer claims the account. */
export type ClaimLinkState =
  | { status: 'valid'; email: string; device: DeviceRecord; expiresAt: number }
  | { status: 'unknown' }
  | { status: 'used' | 'expired'; email: string };

export type ClaimDecision = 'accept' | 'decline';

export type DecideResult =
  | Exclude<ClaimLinkState, { status: 'valid' }>
  | { status: 'accepted'; email: string; device: DeviceRecord }
  | { status: 'declined'; email: string; device: DeviceRecord };

/** Claim ids are 43 base64url characters; anything else is unknown without a query. */
const CLAIM_ID = /^[A-Za-z0-9_-]{20,128}$/;

export class DeviceClaims {
  readonly #now: () => number;

  constructor(
    private readonly opts: DeviceClaimsOptions,
    private readonly deps: DeviceClaimsDeps,
  ) {
    this.#now = deps.clock ?? Date.now;
  }

  /**
   * The device reported `email`, which has an account. If that makes an open claim (the Store's
   * decision) with no live link yet, mails one, within the mail limits.
   */
  async offer(deviceId: string, email: string, deviceName: string): Promise<void> {
    const { store, log } = this.deps;
    const claim = await store.getDeviceClaim(deviceId);
    if (claim?.email !== email) return; // its owner's already
    const now = this.#now();
    // Declined: it does not ask again while it names this account. A link still working for this
    // device and account: reconnecting does not mail again.
    const held = claim.declinedAt !== null ? 'declined'
      : (await store.countConfirmations({ since: now - this.opts.linkTtlMs + 1, email, deviceId, purpose: 'claim' })) > 0 ? 'link still valid'
        : await mailHeldBack(store, this.opts, email, deviceId, now);
    if (held) {
      log.info({ deviceId, email, reason: held }, 'device claim mail held back');
      return;
    }
    const id = newToken();
    const expiresAt = now + this.opts.linkTtlMs;
    await store.createConfirmation({ idHash: sha256Hex(id), purpose: 'claim', email, deviceId, createdAt: now, expiresAt });
    const hub = this.deps.publicUrl().replace(/\/+$/, '');
    const link = `${hub}/v1/ownership?claimId=${id}`;
    this.deps.mailer.send(claimMail({ email, deviceName, deviceId, hub, link, expiresAt }));
    log.info({ deviceId, email, expiresAt: new Date(expiresAt).toISOString(), ...(this.deps.mailer.kind === 'outbox' ? { link } : {}) }, 'device claim mail queued');
  }

  /** What the link with this id leads to. */
  async inspect(claimId: string): Promise<ClaimLinkState> {
    const c = await this.#find(claimId);
    if (!c || c.deviceId === null) return { status: 'unknown' };
    if (c.usedAt !== null) return { status: 'used', email: c.email };
    if (c.expiresAt <= this.#now()) return { status: 'expired', email: c.email };
    const [claim, device] = await Promise.all([this.deps.store.getDeviceClaim(c.deviceId), this.deps.store.getDevice(c.deviceId)]);
    if (!device || claim?.email !== c.email || claim.declinedAt !== null) return { status: 'used', email: c.email };
    return { status: 'valid', email: c.email, device, expiresAt: c.expiresAt };
  }

  /**
   * Decides the claim of a valid link. For 'accept' the caller has checked the password of the
   * link's account; a link that stopped being valid meanwhile changes nothing.
   */
  async decideByLink(claimId: string, decision: ClaimDecision): Promise<DecideResult> {
    const state = await this.inspect(claimId);
    if (state.status !== 'valid') return state;
    const ok = decision === 'accept' ? await this.#accept(state.device.id, state.email, 'link') : await this.#decline(state.device.id, state.email, 'link');
    if (!ok) return { status: 'used', email: state.email };
    return decision === 'accept' ? { status: 'accepted', email: state.email, device: state.device } : { status: 'declined', email: state.email, device: state.device };
  }

  /** The user's open claims with their devices, oldest first. */
  async pending(user: UserRecord): Promise<Array<{ claim: DeviceClaimRecord; device: DeviceRecord }>> {
    const claims = await this.deps.store.listDeviceClaims(user.email);
    const devices = await Promise.all(claims.map((c) => this.deps.store.getDevice(c.deviceId)));
    return claims.flatMap((claim, i) => (devices[i] ? [{ claim, device: devices[i] }] : []));
  }

  /** The signed-in user accepts a device that claims their account; undefined if it does not. */
  async accept(user: UserRecord, deviceId: string): Promise<DeviceRecord | undefined> {
    return this.#accept(deviceId, user.email, 'api');
  }

  /** The signed-in user declines it; false if it does not claim their account. */
  async decline(user: UserRecord, deviceId: string): Promise<boolean> {
    return (await this.#decline(deviceId, user.email, 'api')) !== undefined;
  }

  async #accept(deviceId: string, email: string, via: 'link' | 'api'): Promise<DeviceRecord | undefined> {
    const device = await this.deps.store.acceptDeviceClaim(deviceId, email.toLowerCase(), this.#now());
    if (device) {
      this.deps.ownerChanged?.(deviceId);
      this.deps.log.info({ deviceId, email: device.email, via }, 'device claim accepted; the device has a new owner');
    }
    return device;
  }

  async #decline(deviceId: string, email: string, via: 'link' | 'api'): Promise<true | undefined> {
    const ok = await this.deps.store.declineDeviceClaim(deviceId, email.toLowerCase(), this.#now());
    if (ok) this.deps.log.info({ deviceId, email, via }, 'device claim declined');
    return ok ? true : undefined;
  }

  async #find(claimId: string): Promise<ConfirmationRecord | undefined> {
    if (!CLAIM_ID.test(claimId)) return undefined;
    const c = await this.deps.store.getConfirmation(sha256Hex(claimId));
    return c?.purpose === 'claim' ? c : undefined;
  }
}

/** The claim mail, as text and as HTML. */
export function claimMail(m: { email: string; deviceName: string; deviceId: string; hub: string; link: string; expiresAt: number }) {
  const until = new Date(m.expiresAt).toUTCString();
  const name = displayName(m.deviceName, m.deviceId);
  const device = name !== m.deviceId ? `"${name}" (${m.deviceId})` : `"${name}"`;
  const text = [
    'Hello,',
    '',
    `the device ${device} names ${m.email} as its owner on the cloudrest hub at ${m.hub}.`,
    'It is not added to your account unless you accept it.',
    '',
    'To accept it (with your password) or decline it, open:',
    m.link,
    '',
    `The link works once and until ${until}; signed in, you also find the device among your pending devices.`,
    'If you did not set up this device, decline it or ignore this mail: it gets nothing of yours without your yes.',
    '',
  ].join('\n');
  const html = `<!doctype html><html><body>
<p>Hello,</p>
<p>the device ${escapeHtml(device)} names ${escapeHtml(m.email)} as its owner on the cloudrest hub at ${escapeHtml(m.hub)}. It is not added to your account unless you accept it.</p>
<p><a href="${escapeHtml(m.link)}">Accept or decline this device</a></p>
<p>The link works once and until ${escapeHtml(until)}. If you did not set up this device, decline it or ignore this mail: it gets nothing of yours without your yes.</p>
</body></html>`;
  return { to: m.email, subject: 'A device asks to join your account', text, html };
}
