import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { ErrorCode } from '../errors.js';
import type { DeviceAuth } from '../accounts/device-auth.js';
import type { Authenticator } from '../core/auth/authenticator.js';
import type { HubMetrics } from '../core/metrics.js';
import type { RelayCache } from './relay-cache.js';
import type { TunnelRouter } from './router.js';

export interface RelayOptions {
  maxRequestBodyBytes: number;
  requestTimeoutMs: number;
}

export interface RelayDeps {
  /** The only way to the devices: wherever their tunnels are. */
  router: TunnelRouter;
  auth: Authenticator;
  cache: RelayCache | undefined;
  metrics: HubMetrics;
  log: Logger;
  /** True while the hub drains for shutdown: new requests get 503. */
  isShuttingDown: () => boolean;
  /** Device-side authentication: the device's own token to add to a user's calls, if the hub holds one. */
  deviceAuth?: DeviceAuth;
}

/** What every relayed request of one hub shares (src/relay/forward.ts makes it, relayed-request.ts reads it). */
export interface RelayContext {
  opts: RelayOptions;
  deps: RelayDeps;
  fail: (res: ServerResponse, code: ErrorCode, started: bigint, message?: string, headers?: Record<string, string>) => void;
  /** Where a client authenticates with a device (POST), for the error that sends it there. */
  authPath: (deviceId: string) => string;
}
