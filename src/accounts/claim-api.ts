/**
 * Pending device ownership over HTTP (issue 12; device-claims.ts):
 *
 *   GET  /v1/ownership?claimId=ID              the mailed link: accept (with password) or decline
 *   POST /v1/ownership                         {claimId, decision: accept|decline[, password]}
 *   GET  /v1/devices/pending                   the signed-in user's devices waiting for a yes
 *   POST /v1/devices/pending/{id}/accept       the device becomes theirs
 *   POST /v1/devices/pending/{id}/decline      it does not (and asks no more while it names them)
 *
 * The signed-in routes take first-party tokens only: an OAuth client, whatever its scopes, cannot
 * add a device to the account. The link routes share the confirmation pages' form parser scope.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERRORS, HubError, type ErrorCode } from '../errors.js';
import { requireSession } from '../http/api.js';
import type { Authenticator } from '../core/auth/authenticator.js';
import type { Presence } from '../core/presence.js';
import { claimDecidedPage, claimForm } from './claim-page.js';
import { MAX_PASSWORD_CHARS, PAGE_HEADERS, problemPage } from './confirmation-page.js';
import type { ClaimLinkState, DeviceClaims } from './device-claims.js';
import type { PasswordAttempts } from './password-attempts.js';
import { checkPassword } from './password-check.js';
import { sendRateLimited } from './rate-limited.js';
import { MAX_ID_CHARS, field, wantsJson } from './link-request.js';

export interface ClaimApiDeps {
  auth: Authenticator;
  claims: DeviceClaims;
  attempts: PasswordAttempts;
  presence: Presence;
}


function problemOf(state: Exclude<ClaimLinkState, { status: 'valid' }>): { code: ErrorCode; title: string; message: string } {
  switch (state.status) {
    case 'unknown':
      return { code: 'CR_ERR_CLAIM_INVALID', title: 'This link is not valid', message: 'Check that the whole link from the mail was opened; it may also be too old to be known any more.' };
    case 'expired':
      return { code: 'CR_ERR_CLAIM_EXPIRED', title: 'This link has expired', message: `Sign in as ${state.email} to accept or decline the device among your pending devices.` };
    case 'used':
      return { code: 'CR_ERR_CLAIM_USED', title: 'Already decided', message: 'This device was already accepted or declined, or no longer asks to join your account.' };
  }
}

export function registerClaimApi(app: FastifyInstance, deps: ClaimApiDeps): void {
  const { auth, claims, attempts, presence } = deps;
  const html = (res: FastifyReply, status: number, body: string) => res.code(status).headers(PAGE_HEADERS).send(body);
  const json = (res: FastifyReply, code: ErrorCode, message?: string) =>
    res.code(ERRORS[code].status).header('cache-control', 'no-store').send(new HubError(code, message).toJSON());
  const refuse = (req: FastifyRequest, res: FastifyReply, state: Exclude<ClaimLinkState, { status: 'valid' }>) => {
    const p = problemOf(state);
    return wantsJson(req) ? json(res, p.code, p.message) : html(res, ERRORS[p.code].status, problemPage(p.title, p.message));
  };

  app.get('/v1/ownership', async (req, res) => {
    const id = (field(req.query, 'claimId') ?? '').slice(0, MAX_ID_CHARS + 1);
    const state = await claims.inspect(id);
    if (state.status !== 'valid') return refuse(req, res, state);
    const device = { id: state.device.id, name: state.device.name };
    if (wantsJson(req)) return res.header('cache-control', 'no-store').send({ email: state.email, device, expires: new Date(state.expiresAt).toISOString() });
    return html(res, 200, claimForm(id, state.email, device));
  });

  app.post('/v1/ownership', async (req, res) => {
    const id = (field(req.body, 'claimId') ?? '').slice(0, MAX_ID_CHARS + 1);
    const decision = field(req.body, 'decision');
    const password = field(req.body, 'password');
    const state = await claims.inspect(id);
    if (state.status !== 'valid') return refuse(req, res, state);
    const device = { id: state.device.id, name: state.device.name };
    if (decision !== 'accept' && decision !== 'decline') {
      const message = 'decision must be accept or decline';
      return wantsJson(req) ? json(res, 'CR_ERR_VALIDATION', message) : html(res, 400, claimForm(id, state.email, device, message));
    }
    if (decision === 'accept') {
      // The link proves the mailbox; the password proves the account (links get forwarded, and are
      // logged when there is no mail server). Counted like every other password check.
      if (password === undefined || password === '' || password.length > MAX_PASSWORD_CHARS) {
        const message = 'Enter your password to accept the device.';
        return wantsJson(req) ? json(res, 'CR_ERR_VALIDATION', message) : html(res, 400, claimForm(id, state.email, device, message));
      }
      const c = await checkPassword(attempts, state.email.toLowerCase(), req.ip, () => auth.verifyPassword(state.email, password, req.ip));
      if (c.status === 'refused') return sendRateLimited(res, c.retryAfterMs, c.code);
      if (c.status === 'wrong') {
        const message = 'That is not the password of this account.';
        return wantsJson(req) ? json(res, 'CR_ERR_INVALID_CREDENTIALS', message) : html(res, 401, claimForm(id, state.email, device, message));
      }
    }
    const r = await claims.decideByLink(id, decision);
    if (r.status === 'accepted' || r.status === 'declined') {
      if (wantsJson(req)) return res.header('cache-control', 'no-store').send({ device, [r.status]: true });
      return html(res, 200, claimDecidedPage(r.status, device));
    }
    return refuse(req, res, r);
  });

  app.get('/v1/devices/pending', async (req, res) => {
    const s = await requireSession(auth, req);
    const pending = await claims.pending(s.user);
    const where = await presence.getMany(pending.map(({ device }) => device.id));
    res.header('cache-control', 'no-store');
    return {
      devices: pending.map(({ claim, device }, i) => ({
        id: device.id,
        name: device.name,
        online: where[i] !== undefined,
        requested: new Date(claim.createdAt).toISOString(),
      })),
    };
  });

  app.post('/v1/devices/pending/:id/accept', async (req) => {
    const s = await requireSession(auth, req);
    const { id } = req.params as { id: string };
    const d = await claims.accept(s.user, id);
    if (!d) throw new HubError('CR_ERR_DEVICE_NOT_FOUND', 'no such device waiting for you to accept it');
    return { id: d.id, name: d.name, accepted: true };
  });

  app.post('/v1/devices/pending/:id/decline', async (req, res) => {
    const s = await requireSession(auth, req);
    const { id } = req.params as { id: string };
    if (!(await claims.decline(s.user, id))) throw new HubError('CR_ERR_DEVICE_NOT_FOUND', 'no such device waiting for you to accept it');
    return res.code(204).send();
  });
}
