/**
 * How the hub plugs its identity and ACLs into the broker. Every hook is optional; the defaults are
 * applied by resolveHooks().
 */
import { RC } from './reason-codes.js';

export type Transport = 'tcp' | 'tls' | 'ws' | 'wss';

export interface AuthRequest {
  clientId: string;
  username: string | undefined;
  password: Buffer | undefined;
  remoteAddress: string;
  transport: Transport;
  protocolVersion: 3 | 4 | 5;
}

/**
 * Accepted, with the principal (device id, user id...) that owns the session and is passed to the
 * authorize hooks, and optionally the credential it proved itself with (a token's hash: many
 * connections of one principal may use different ones), for Broker.disconnectCredential; or refused with a v5 CONNACK reason code (mapped to a 3.1.1 return code for older
 * clients: 0x86 → 4, 0x87 → 5, 0x85 → 2, 0x88/0x89 → 3).
 */
export type AuthResult = { principal: string; credential?: string } | { reasonCode: number; reasonString?: string };

/** One step of MQTT 5 enhanced authentication (5.0 §4.12): the method and data of a CONNECT or AUTH. */
export interface EnhancedAuthRequest extends AuthRequest {
  method: string;
  data: Buffer | undefined;
  /** 0 for the CONNECT, then 1, 2... for each AUTH the client sends. */
  step: number;
  /** Whatever the previous step returned as `state`. */
  state: unknown;
}

export type EnhancedAuthResult =
  | { principal: string; credential?: string; data?: Buffer }
  | { continue: true; data?: Buffer; state?: unknown }
  | { reasonCode: number; reasonString?: string };

export interface BrokerHooks {
  /**
   * Checks a CONNECT that carries a user name or password. Without credentials, the broker decides
   * alone: accepted as principal 'anonymous' if options.allowAnonymous, else refused with 0x87. Without
   * this hook, credentials are accepted only when anonymous access is on (as 'anonymous').
   */
  authenticate?(req: AuthRequest): Promise<AuthResult> | AuthResult;
  /** MQTT 5 enhanced authentication; without it, a CONNECT with an Authentication Method gets 0x8C. */
  enhancedAuthenticate?(req: EnhancedAuthRequest): Promise<EnhancedAuthResult> | EnhancedAuthResult;
  /** May `principal` publish on `topic`? Refused: dropped (3.1.1) or answered with 0x87 (5.0). Default: yes. */
  authorizePublish?(principal: string, topic: string, clientId: string): boolean;
  /**
   * May `principal` subscribe to `filter` (as sent, `$share/{group}/` included)? true: granted, every
   * message matching it is delivered; 'per-message': granted, each message's topic is then checked with
   * authorizeReceive (some of the filter's topics are allowed, not all); false: refused, SUBACK failure
   * (0x80 / 0x87). Asked again for each subscription on Broker.authorizationChanged() and when a stored
   * session is resumed. Default: yes.
   */
  authorizeSubscribe?(principal: string, filter: string, clientId: string): SubscribeDecision;
  /**
   * For a subscription granted 'per-message': may `principal` receive a message on `topic`? Asked once
   * per subscription and topic, the answer kept (a bounded number per subscription) until
   * Broker.authorizationChanged(). Default: yes.
   */
  authorizeReceive?(principal: string, topic: string, clientId: string): boolean;
  /** Told about failures that close no connection (a persistence write that failed, a hook that threw). */
  onError?(err: unknown, context: string): void;
  /** Told about what the broker refused or skipped without closing a connection (rate-limited where a peer can repeat it). */
  onWarning?(message: string, details: Record<string, unknown>): void;
}

export type SubscribeDecision = boolean | 'per-message';

export interface ResolvedHooks {
  authenticate(req: AuthRequest): Promise<AuthResult> | AuthResult;
  enhancedAuthenticate: BrokerHooks['enhancedAuthenticate'];
  authorizePublish(principal: string, topic: string, clientId: string): boolean;
  authorizeSubscribe(principal: string, filter: string, clientId: string): SubscribeDecision;
  authorizeReceive(principal: string, topic: string, clientId: string): boolean;
  onError(err: unknown, context: string): void;
  onWarning(message: string, details: Record<string, unknown>): void;
}

export const ANONYMOUS = 'anonymous';

export function resolveHooks(hooks: BrokerHooks, allowAnonymous: boolean): ResolvedHooks {
  const custom = hooks.authenticate?.bind(hooks);
  const onError = hooks.onError?.bind(hooks) ?? ((err: unknown, context: string) => process.emitWarning(`MQTT broker: ${context}: ${String(err)}`));
  return {
    authenticate(req) {
      if (req.username === undefined && req.password === undefined) {
        return allowAnonymous ? { principal: ANONYMOUS } : { reasonCode: RC.NOT_AUTHORIZED, reasonString: 'anonymous access is off' };
      }
      if (custom !== undefined) return custom(req);
      return allowAnonymous ? { principal: ANONYMOUS } : { reasonCode: RC.BAD_USERNAME_OR_PASSWORD };
    },
    enhancedAuthenticate: hooks.enhancedAuthenticate?.bind(hooks),
    authorizePublish: guard(hooks.authorizePublish?.bind(hooks), onError, 'authorizePublish'),
    authorizeSubscribe: guardSubscribe(hooks.authorizeSubscribe?.bind(hooks), onError),
    authorizeReceive: guard(hooks.authorizeReceive?.bind(hooks), onError, 'authorizeReceive'),
    onError,
    onWarning: hooks.onWarning?.bind(hooks) ?? ((message, details) => process.emitWarning(`MQTT broker: ${message} ${JSON.stringify(details)}`)),
  };
}

/** A throwing ACL hook refuses, and is reported; it never takes the connection or the process down. */
function guard(
  fn: ((principal: string, name: string, clientId: string) => boolean) | undefined,
  onError: (err: unknown, context: string) => void,
  context: string,
): (principal: string, name: string, clientId: string) => boolean {
  if (fn === undefined) return () => true;
  return (principal, name, clientId) => {
    try {
      return fn(principal, name, clientId) === true;
    } catch (err) {
      onError(err, context);
      return false;
    }
  };
}

function guardSubscribe(
  fn: ((principal: string, filter: string, clientId: string) => SubscribeDecision) | undefined,
  onError: (err: unknown, context: string) => void,
): (principal: string, filter: string, clientId: string) => SubscribeDecision {
  if (fn === undefined) return () => true;
  return (principal, filter, clientId) => {
    try {
      const d = fn(principal, filter, clientId);
      return d === 'per-message' ? d : d === true;
    } catch (err) {
      onError(err, 'authorizeSubscribe');
      return false;
    }
  };
}
