/**
 * Device-side authentication (seed "Authentification", method 2): a device whose info declares
 * `apiAuthPath` checks its users itself, so a password may live only on the device, never in the cloud.
 *
 * The exchange (docs/api.md, "Device authentication"): the user gives the device password to
 * `POST /v1/devices/{id}/auth`; the hub passes it on, through the tunnel, as
 * `POST {apiAuthPath}` `{"email": <the user's email>, "password": ...}` and forgets it. The device
 * answers `{"access_token": T, "expires_in": seconds}` (the shape of RFC 6749 §5.1) or 401/403. The hub
 * keeps T in memory only, per (user, device), and adds `Authorization: Bearer T` to that user's relayed
 * calls. When the device answers such a call 401, T is dropped and the client is told to authenticate
 * again (CR_ERR_DEVICE_AUTH_EXPIRED).
 *
 * Held in memory on purpose: nothing to steal at rest; a hub restart asks users to authenticate with
 * their devices again.
 */
import { LRUCache } from 'lru-cache';
import { HubError } from '../errors.js';
import type { ResponseHead } from '../relay/protocol/heads.js';
import { RouteError, isWaiting, type RequestStream, type ResponseListener, type TunnelRouter } from '../relay/router.js';
import type { DeviceRecord } from '../store/store.js';

/** The device path may only be an origin-form path (RFC 9112 §3.2.1) of visible ASCII. */
const AUTH_PATH = /^\/[\x21-\x7e]{0,1023}$/;
/** RFC 6750 §2.1 b64token: what may follow `Bearer ` in a header. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const MAX_TOKEN_CHARS = 4096;
const MAX_ANSWER_BYTES = 16 * 1024;
/** When the device gives no expires_in, and the longest a device token is kept. */
const DEFAULT_TTL_MS = 24 * 3_600_000;
const MAX_TTL_MS = 30 * 24 * 3_600_000;

interface Held {
  token: string;
  expiresAt: number;
}

/** The apiAuthPath a device declares, if it is a usable one. */
export function apiAuthPath(device: DeviceRecord): string | undefined {
  const p = device.info?.['apiAuthPath'];
  return typeof p === 'string' && AUTH_PATH.test(p) ? p : undefined;
}

export class DeviceAuth {
  /** `${userId} ${deviceId}` → the device's token for that user. */
  readonly #held: LRUCache<string, Held>;

  constructor(
    private readonly deps: { router: TunnelRouter; requestTimeoutMs: number },
    maxTokens = 100_000,
  ) {
    this.#held = new LRUCache({ max: maxTokens });
  }

  /**
   * The token to add to this user's relayed call to this device, if the hub holds one. On the relay's
   * path: synchronous, and a device that declares no apiAuthPath costs one property read.
   */
  tokenFor(userId: string, device: DeviceRecord): string | undefined {
    if (this.#held.size === 0 || typeof device.info?.['apiAuthPath'] !== 'string') return undefined;
    return this.#current(`${userId} ${device.id}`);
  }

  #current(key: string): string | undefined {
    const h = this.#held.get(key);
    if (h === undefined) return undefined;
    if (h.expiresAt <= Date.now()) {
      this.#held.delete(key);
      return undefined;
    }
    return h.token;
  }

  /** When the hub's token for this user, if any, expires. */
  expiresAt(userId: string, deviceId: string): number | undefined {
    const key = `${userId} ${deviceId}`;
    return this.#current(key) === undefined ? undefined : this.#held.get(key)?.expiresAt;
  }

  /** The device answered 401 to a call carrying `token`: drop it (unless a newer one replaced it meanwhile). */
  rejected(userId: string, deviceId: string, token: string): void {
    const key = `${userId} ${deviceId}`;
    if (this.#held.get(key)?.token === token) this.#held.delete(key);
  }

  forget(userId: string, deviceId: string): void {
    this.#held.delete(`${userId} ${deviceId}`);
  }

  get size(): number {
    return this.#held.size;
  }

  /**
   * Asks the device for a token for this user with the password the user gave, and keeps it. Throws
   * HubError: CR_ERR_DEVICE_AUTH_UNSUPPORTED (no apiAuthPath), CR_ERR_DEVICE_OFFLINE,
   * CR_ERR_DEVICE_AUTH_FAILED (the device said no), CR_ERR_DEVICE_TIMEOUT, CR_ERR_DEVICE_DISCONNECTED,
   * CR_ERR_DEVICE_AUTH_BAD_RESPONSE.
   */
  async authenticate(user: { id: string; email: string }, device: DeviceRecord, password: string, clientAddress: string): Promise<{ expiresAt: number }> {
    const path = apiAuthPath(device);
    if (path === undefined) throw new HubError('CR_ERR_DEVICE_AUTH_UNSUPPORTED');
    const body = Buffer.from(JSON.stringify({ email: user.email, password }));
    const { head, answer } = await this.#exchange(device.id, path, body, clientAddress);
    if (head.status === 401 || head.status === 403) throw new HubError('CR_ERR_DEVICE_AUTH_FAILED');
    if (head.status !== 200 && head.status !== 201) throw new HubError('CR_ERR_DEVICE_AUTH_BAD_RESPONSE', `the device answered ${path} with status ${head.status}`);
    let parsed: { access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(answer.toString('utf8')) as typeof parsed;
    } catch {
      throw new HubError('CR_ERR_DEVICE_AUTH_BAD_RESPONSE', `the device's answer to ${path} is not JSON`);
    }
    const token = parsed?.access_token;
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_CHARS || !B64TOKEN.test(token)) {
      throw new HubError('CR_ERR_DEVICE_AUTH_BAD_RESPONSE', `the device's answer to ${path} has no usable access_token`);
    }
    const seconds = parsed.expires_in;
    const ttl = typeof seconds === 'number' && Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds * 1000, MAX_TTL_MS) : DEFAULT_TTL_MS;
    const expiresAt = Date.now() + ttl;
    this.#held.set(`${user.id} ${device.id}`, { token, expiresAt });
    return { expiresAt };
  }

  /** One request to the device through its tunnel, the answer read whole (it is small or refused). */
  async #exchange(deviceId: string, path: string, body: Buffer, clientAddress: string): Promise<{ head: ResponseHead; answer: Buffer }> {
    const headers: Array<[string, string]> = [
      ['content-type', 'application/json'],
      ['accept', 'application/json'],
      ['content-length', String(body.length)],
      ['x-forwarded-for', clientAddress],
    ];
    let channel: RequestStream | undefined;
    /** Started once the request is on its way; settling before that has no timer to clear. */
    const deadline: { timer?: NodeJS.Timeout } = {};
    let settle!: (err: HubError | undefined, value?: { head: ResponseHead; answer: Buffer }) => void;
    const answered = new Promise<{ head: ResponseHead; answer: Buffer }>((resolve, reject) => {
      settle = (err, value) => {
        clearTimeout(deadline.timer);
        settle = () => undefined;
        if (err) reject(err);
        else resolve(value!);
      };
    });
    // It may settle (the tunnel drops) while this still awaits a queue slot; the caller awaits it later.
    answered.catch(() => undefined);
    const parts: Buffer[] = [];
    let size = 0;
    let head: ResponseHead | undefined;
    const finish = (): void => settle(undefined, { head: head!, answer: Buffer.concat(parts) });
    const listener: ResponseListener = {
      onResponse: (h, end) => {
        head = h;
        if (end) finish();
      },
      onData: (c, end) => {
        size += c.length;
        if (size > MAX_ANSWER_BYTES) {
          channel?.cancel();
          settle(new HubError('CR_ERR_DEVICE_AUTH_BAD_RESPONSE', `the device's answer to ${path} exceeds ${MAX_ANSWER_BYTES} bytes`));
          return;
        }
        parts.push(c);
        if (end) finish();
      },
      onError: () => settle(new HubError('CR_ERR_DEVICE_DISCONNECTED')),
    };
    let opened = this.deps.router.open(deviceId, { method: 'POST', target: path, headers }, false, listener);
    if (opened instanceof Promise) opened = await opened;
    if (opened === 'offline') throw new HubError('CR_ERR_DEVICE_OFFLINE');
    if (opened === 'busy') throw new HubError('CR_ERR_TOO_MANY_REQUESTS', undefined);
    try {
      channel = isWaiting(opened) ? await opened.started : opened;
    } catch (err) {
      throw new HubError(err instanceof RouteError ? err.code : 'CR_ERR_DEVICE_DISCONNECTED');
    }
    const ch = channel;
    deadline.timer = setTimeout(() => {
      ch.cancel();
      settle(new HubError('CR_ERR_DEVICE_TIMEOUT', `no answer from the device's ${path} within ${this.deps.requestTimeoutMs} ms`));
    }, this.deps.requestTimeoutMs);
    ch.write(body, () => undefined);
    ch.end();
    return answered;
  }
}
