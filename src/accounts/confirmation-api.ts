/**
 * The confirmation link's endpoints (seed "CloudREST Server API": GET /v1/confirmation). A browser gets
 * HTML pages and posts a form; an app that handles the link itself sends and gets JSON.
 *
 *   GET  /v1/confirmation?confirmationId=ID    the password form (or what is wrong with the link)
 *   POST /v1/confirmation                      {confirmationId, password[, passwordRepeat]}: creates the user
 *   POST /v1/confirmation/resend               {confirmationId} of an expired link: mails a new one
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BusyError } from '../core/fair-semaphore.js';
import { ERRORS, HubError, type ErrorCode } from '../errors.js';
import { MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, PAGE_HEADERS, confirmedPage, passwordForm, problemPage, resentPage } from './confirmation-page.js';
import { retryAfterSeconds } from './rate-limited.js';
import type { LinkState, Registration } from './registration.js';
import { MAX_ID_CHARS, field, wantsJson } from './link-request.js';


interface Problem {
  code: ErrorCode;
  title: string;
  message: string;
}

/** What a link that cannot be used says, as an error code and as a page. */
function problemOf(state: Exclude<LinkState, { status: 'valid' }>): Problem {
  switch (state.status) {
    case 'unknown':
      return { code: 'CR_ERR_CONFIRMATION_INVALID', title: 'This link is not valid', message: 'Check that the whole link from the mail was opened; it may also be too old to be known any more.' };
    case 'expired':
      return { code: 'CR_ERR_CONFIRMATION_EXPIRED', title: 'This link has expired', message: `The link for ${state.email} is too old. Ask for a new one; your device also asks for one when it next connects.` };
    case 'used':
      return { code: 'CR_ERR_CONFIRMATION_USED', title: 'Already confirmed', message: `${state.email} is already confirmed. Sign in with it and your password.` };
    case 'registered':
      return { code: 'CR_ERR_CONFIRMATION_USED', title: 'Already registered', message: `${state.email} already has an account. Sign in with it and your password.` };
  }
}

export function registerConfirmationApi(app: FastifyInstance, registration: Registration, resendRetryAfterS: number): void {
  const html = (res: FastifyReply, status: number, body: string) => res.code(status).headers(PAGE_HEADERS).send(body);
  const json = (res: FastifyReply, code: ErrorCode, message?: string) =>
    res.code(ERRORS[code].status).header('cache-control', 'no-store').send(new HubError(code, message).toJSON());

  /** Answers a link that cannot be used; `resendAction` offers a new link on an expired one's page. */
  const refuse = (req: FastifyRequest, res: FastifyReply, id: string, state: Exclude<LinkState, { status: 'valid' }>, resendAction?: string) => {
    const p = problemOf(state);
    if (wantsJson(req)) return json(res, p.code, p.message);
    const resend = state.status === 'expired' && resendAction ? { confirmationId: id, action: resendAction } : undefined;
    return html(res, ERRORS[p.code].status, problemPage(p.title, p.message, resend));
  };

  app.get('/v1/confirmation', async (req, res) => {
    const id = field(req.query, 'confirmationId') ?? '';
    const state = await registration.inspect(id.slice(0, MAX_ID_CHARS + 1));
    if (state.status !== 'valid') return refuse(req, res, id, state, 'confirmation/resend');
    if (wantsJson(req)) return res.header('cache-control', 'no-store').send({ email: state.email, expires: new Date(state.expiresAt).toISOString() });
    return html(res, 200, passwordForm(id, state.email));
  });

  app.post('/v1/confirmation', async (req, res) => {
    const id = field(req.body, 'confirmationId') ?? '';
    const password = field(req.body, 'password');
    const repeat = field(req.body, 'passwordRepeat');
    const state = await registration.inspect(id.slice(0, MAX_ID_CHARS + 1));
    if (state.status !== 'valid') return refuse(req, res, id, state, 'confirmation/resend');
    const problem = password === undefined ? 'Choose a password.'
      : password.length < MIN_PASSWORD_CHARS ? `The password needs at least ${MIN_PASSWORD_CHARS} characters.`
        : password.length > MAX_PASSWORD_CHARS ? `The password may have at most ${MAX_PASSWORD_CHARS} characters.`
          : repeat !== undefined && repeat !== password ? 'The two passwords differ.' : undefined;
    if (problem !== undefined) {
      return wantsJson(req) ? json(res, 'CR_ERR_VALIDATION', problem) : html(res, 400, passwordForm(id, state.email, problem));
    }
    let r;
    try {
      r = await registration.confirm(id, password!, req.ip);
    } catch (err) {
      if (!(err instanceof BusyError)) throw err;
      // Too many password hashes at once, hub-wide (core/password-hasher.ts): the link still works.
      res.header('retry-after', String(retryAfterSeconds(err.retryAfterMs)));
      return wantsJson(req) ? json(res, 'CR_ERR_BUSY') : html(res, 429, passwordForm(id, state.email, 'The hub is busy. Try again in a moment.'));
    }
    if (r.status !== 'confirmed') return refuse(req, res, id, r.status === 'unknown' ? { status: 'unknown' } : { status: r.status, email: r.email ?? state.email }, 'confirmation/resend');
    if (wantsJson(req)) return res.code(201).header('cache-control', 'no-store').send({ email: r.user.email, confirmed: true });
    return html(res, 200, confirmedPage(r.user.email));
  });

  app.post('/v1/confirmation/resend', async (req, res) => {
    const id = field(req.body, 'confirmationId') ?? '';
    const r = await registration.resend(id.slice(0, MAX_ID_CHARS + 1));
    switch (r.status) {
      case 'sent':
        return wantsJson(req) ? res.code(202).header('cache-control', 'no-store').send({ email: r.email, sent: true }) : html(res, 202, resentPage(r.email));
      case 'held': {
        res.header('retry-after', String(resendRetryAfterS));
        const message = `A link was mailed to ${r.email} recently; wait a while before asking again.`;
        return wantsJson(req) ? json(res, 'CR_ERR_RATE_LIMITED', message) : html(res, 429, problemPage('Please wait', message));
      }
      case 'valid':
        return wantsJson(req) ? json(res, 'CR_ERR_BAD_REQUEST', 'this link has not expired; use it') : html(res, 400, problemPage('This link still works', 'Open the link from your mail again to choose your password.'));
      default:
        return refuse(req, res, id, r);
    }
  });
}
