/**
 * Accounts in the hub: registration from the device with mailed confirmation links, password checks
 * with failed-attempt limits, token listing and revocation, and device-side authentication. hub.ts
 * creates it once the tunnels exist, tells it of every device connection, mounts its routes, and
 * closes it before the Store.
 */
import type { AttemptLimiter, NamedLimiterOptions } from '../core/failure-limiter.js';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import { ConfigError } from '../config/load.js';
import type { HubConfig } from '../config/hub-options.js';
import type { HubMetrics } from '../core/metrics.js';
import type { Presence } from '../core/presence.js';
import type { TunnelRouter } from '../relay/router.js';
import type { Store } from '../store/store.js';
import { Mailer, checkSmtpUrl, redactedSmtpUrl } from '../mail/mailer.js';
import { registerAccountsApi } from './accounts-api.js';
import { DeviceAuth } from './device-auth.js';
import { DeviceClaims } from './device-claims.js';
import { PasswordAttempts } from './password-attempts.js';
import { Registration } from './registration.js';
import type { Authenticator } from '../core/auth/authenticator.js';

export interface AccountsDeps {
  config: HubConfig;
  store: Store;
  auth: Authenticator;
  /** Device authentication reaches the device through it. */
  router: TunnelRouter;
  presence: Presence;
  metrics: HubMetrics;
  log: Logger;
  /** Base URL for links in mails; read when a mail is written (the HTTP port is bound by then). */
  publicUrl: () => string;
  /** A device got a new owner (an accepted claim): whatever caches its owner must forget it. */
  deviceOwnerChanged?: (deviceId: string) => void;
  /** Makes the failed-attempt limits of password checks (src/backends.ts picks the implementation). */
  attemptLimiter: (o: NamedLimiterOptions) => AttemptLimiter;
}

export interface AccountsService {
  readonly registration: Registration;
  /** Devices waiting for an account's yes (issue 12). */
  readonly claims: DeviceClaims;
  readonly deviceAuth: DeviceAuth;
  readonly attempts: PasswordAttempts;
  readonly mailer: Mailer;
  /** A device's tunnel came up with this info (its email may need confirming). Never waits. */
  deviceConnected(deviceId: string, info: Record<string, unknown>): void;
  /** Mounts the routes (before the app is ready). */
  register(app: FastifyInstance): void;
  close(): Promise<void>;
}

const SWEEP_MS = 3_600_000;

/** The default From: the public URL's host name when it is a name (not an address), else localhost. */
function defaultFrom(publicUrl: string | undefined): string {
  let host = 'localhost';
  try {
    const h = publicUrl ? new URL(publicUrl).hostname : '';
    if (/[a-z]/i.test(h) && !h.includes(':')) host = h;
  } catch {
    // an unparsable --public-url is reported where it is used
  }
  return `cloudrest <noreply@${host}>`;
}

export function createAccounts(d: AccountsDeps): AccountsService {
  const { config, store, log } = d;
  if (config.smtpUrl !== undefined) {
    const problem = checkSmtpUrl(config.smtpUrl);
    if (problem) throw new ConfigError(problem);
  }
  const mails = new Counter({ name: 'cloudrest_mails_total', help: 'Mails by outcome: sent (or written to the outbox), retried, failed after retries, dropped (queue full)', labelNames: ['result'], registers: [d.metrics.registry] });
  const mailer = new Mailer(
    { smtpUrl: config.smtpUrl, outbox: config.outbox ?? join(config.data, 'outbox'), from: config.mailFrom ?? defaultFrom(config.publicUrl), retries: config.mailRetries, retryMs: config.mailRetryMs },
    log.child({ part: 'mail' }),
    (e) => mails.inc({ result: e }),
  );
  log.info(config.smtpUrl ? { smtp: redactedSmtpUrl(config.smtpUrl) } : { outbox: config.outbox ?? join(config.data, 'outbox') }, config.smtpUrl ? 'mail goes through SMTP' : 'mail goes to the outbox folder (no --smtp-url)');
  const mailLimits = {
    resendMs: config.confirmationResendMs,
    maxPerHour: config.mailMaxPerHour,
    maxPerAddressPerDay: config.mailMaxPerAddressPerDay,
    maxPerDevicePerDay: config.mailMaxPerDevicePerDay,
  };
  const claims = new DeviceClaims({ ...mailLimits, linkTtlMs: config.confirmationTtlMs }, { store, mailer, log, publicUrl: d.publicUrl, ownerChanged: d.deviceOwnerChanged });
  const registration = new Registration({ ...mailLimits, confirmationTtlMs: config.confirmationTtlMs }, { store, mailer, log, publicUrl: d.publicUrl, claims, hasher: d.auth.hasher });
  const attempts = new PasswordAttempts({ maxFailures: config.loginMaxFailures, maxFailuresPerAddress: config.loginMaxFailuresPerAddress, windowMs: config.loginWindowMs }, d.attemptLimiter);
  const deviceAuth = new DeviceAuth({ router: d.router, requestTimeoutMs: config.requestTimeoutMs });

  // Expired tokens and old confirmations are dead rows; clear them hourly, off any request path.
  const sweep = setInterval(() => {
    void Promise.all([store.deleteExpiredTokens(Date.now()), registration.sweep()]).then(
      ([tokens, confirmations]) => {
        if (tokens + confirmations > 0) log.debug({ tokens, confirmations }, 'expired rows removed');
      },
      (err: unknown) => log.error({ err }, 'removing expired tokens and confirmations failed'),
    );
  }, SWEEP_MS);
  sweep.unref();

  return {
    registration,
    claims,
    deviceAuth,
    attempts,
    mailer,
    deviceConnected: (deviceId, info) => registration.deviceConnected(deviceId, info),
    register: (app) => registerAccountsApi(app, { auth: d.auth, registration, claims, presence: d.presence, attempts, deviceAuth, resendRetryAfterS: Math.max(1, Math.ceil(config.confirmationResendMs / 1000)) }),
    async close() {
      clearInterval(sweep);
      await mailer.close();
    },
  };
}
