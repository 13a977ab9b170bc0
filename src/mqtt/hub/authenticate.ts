/**
 * Who an MQTT client is, from its CONNECT: a device (user name = device id, password = device secret,
 * the tunnel's credentials) or a user (user name = anything, by convention their email; password = an
 * access token from POST /v1/auth). Principals are `device:<id>` and `user:<id>`; the identity behind
 * each is kept for the ACL, which needs the device id or the user's email. A user's connection carries
 * its token's hash as its credential, so revoking the token disconnects it (service.ts).
 */
import type { Logger } from 'pino';
import type { LogLimiter } from '../../core/log-limiter.js';
import { verifyDevice } from '../../core/device-credentials.js';
import type { Authenticator } from '../../core/auth/authenticator.js';
import type { Store } from '../../store/store.js';
import { ANONYMOUS, type AuthRequest, type AuthResult } from '../hooks.js';
import { RC } from '../reason-codes.js';
import type { Identity } from './acl.js';
import type { DeviceOwnership } from './ownership.js';

const MAX_CREDENTIAL_CHARS = 1024;
/** Kind of the rate-limited log lines of refused CONNECTs. */
const REFUSED = 'mqtt connection refused';

export class MqttIdentities {
  /** Principal → identity; bounded by the number of users and devices. */
  readonly #byPrincipal = new Map<string, Identity>([[ANONYMOUS, { kind: 'anonymous' }]]);

  constructor(
    private readonly deps: { store: Store; auth: Authenticator; ownership: DeviceOwnership; log: Logger; refusals: LogLimiter },
  ) {}

  identity(principal: string): Identity | undefined {
    return this.#byPrincipal.get(principal);
  }

  /** The broker's authenticate hook (called only for a CONNECT with a user name or password). */
  async authenticate(req: AuthRequest): Promise<AuthResult> {
    const { store, auth, ownership, refusals } = this.deps;
    const username = req.username ?? '';
    const password = req.password?.toString('utf8') ?? '';
    const refuse = (reason: string): AuthResult => {
      // Anyone can cause this line at will: at most one per client address per interval (src/core/log-limiter.ts).
      refusals.warn(REFUSED, req.remoteAddress, { clientId: req.clientId, username, remoteAddress: req.remoteAddress, transport: req.transport, reason }, 'mqtt connection refused: authentication failed');
      return { reasonCode: RC.BAD_USERNAME_OR_PASSWORD, reasonString: 'unknown user name or wrong password' };
    };
    if (password === '' || username.length > MAX_CREDENTIAL_CHARS || password.length > MAX_CREDENTIAL_CHARS) return refuse('missing or oversized credentials');
    const device = await verifyDevice(store, username, password);
    if (device === 'revoked') {
      refusals.warn(REFUSED, req.remoteAddress, { clientId: req.clientId, username, remoteAddress: req.remoteAddress, transport: req.transport }, 'mqtt connection refused: device revoked');
      return { reasonCode: RC.BANNED, reasonString: 'device revoked' };
    }
    if (device !== undefined) {
      ownership.set(device);
      return this.#accept(`device:${device.id}`, { kind: 'device', id: device.id });
    }
    const session = await auth.session(password);
    // MQTT topics have no OAuth scope: only first-party tokens connect as a user.
    if (session?.scopes !== undefined) return refuse('an OAuth access token cannot be used for MQTT');
    if (session !== undefined) {
      await ownership.refreshOwner(session.user.email);
      // Revoked while the owner's devices were read: the disconnect went by before this connection was known.
      if (!(await auth.stillValid(password))) return refuse('token revoked while connecting');
      return { ...this.#accept(`user:${session.user.id}`, { kind: 'user', id: session.user.id, email: session.user.email.toLowerCase() }), credential: session.tokenHash };
    }
    return refuse('neither a device secret nor an access token');
  }

  #accept(principal: string, identity: Identity): { principal: string } {
    this.#byPrincipal.set(principal, identity);
    return { principal };
  }
}
