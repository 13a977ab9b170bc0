import type { AgentConfig } from '../../config/agent-options.js';
import { ConfigError } from '../../config/load.js';
import { advertisedAddresses } from '../discovery/interfaces.js';
import { MdnsAdvertiser } from '../discovery/mdns-advertiser.js';
import { UdpDiscoveryResponder } from '../discovery/udp-responder.js';
import type { ServiceClient } from '../service-client.js';
import { describeError, type Logger } from '../log.js';
import { LanServer } from './lan-server.js';
import { TokenChecker } from './token-check.js';
import { TrustStore } from './trust-store.js';

export interface LanAccessDeps {
  log: Logger;
  client: ServiceClient;
  /** The device info last fetched (GET /device): its `email` is the owner, its `name` the name. */
  info: () => Record<string, unknown>;
  refreshInfo: () => Promise<void>;
  onWrite: (target: string) => void;
}

/** How often the device info is fetched again while serving the LAN (the owner may change it). */
const INFO_REFRESH_MS = 60_000;
/** Until the REST service has answered once (it may start after the agent at boot). */
const INFO_RETRY_MS = 5_000;

/**
 * The agent's LAN side (seed 002 "Not Internet only", "Local Discovery Service"): the LAN listener
 * with offline token checks (--lan-port) and discovery (--discovery: UDP broadcast answers and mDNS).
 */
export class LanAccess {
  trust: TrustStore | undefined;
  #server: LanServer | undefined;
  #udp: UdpDiscoveryResponder | undefined;
  #mdns: MdnsAdvertiser | undefined;
  #infoTimer: NodeJS.Timeout | undefined;
  #infoKnown = false;
  #closed = false;

  private constructor(
    private readonly config: AgentConfig,
    private readonly api: URL,
    private readonly deps: LanAccessDeps,
  ) {}

  /** Undefined when neither --lan-port nor --discovery is set. Throws ConfigError for unusable combinations. */
  static fromConfig(config: AgentConfig, api: URL, deps: LanAccessDeps): LanAccess | undefined {
    if (config.lanPort === undefined && !config.discovery) return undefined;
    if ((config.lanTlsCert === undefined) !== (config.lanTlsKey === undefined)) throw new ConfigError('--lan-tls-cert and --lan-tls-key go together');
    if (config.lanTlsCert !== undefined && config.lanPort === undefined) throw new ConfigError('--lan-tls-cert needs --lan-port');
    if (config.discovery && config.lanPort === undefined && isLoopback(api.hostname)) {
      throw new ConfigError(`--discovery needs --lan-port: the REST API (--api ${config.api}) is on a loopback address LAN clients cannot reach`);
    }
    return new LanAccess(config, api, deps);
  }

  get port(): number | undefined {
    return this.#server?.port;
  }

  get discoveryPort(): number | undefined {
    return this.#udp?.port;
  }

  describe(): Record<string, unknown> {
    return {
      ...(this.#server ? { lanPort: this.#server.port, lanTls: this.#server.secure } : {}),
      ...(this.#udp ? { discoveryPort: this.#udp.port, mdns: this.#mdns !== undefined } : {}),
    };
  }

  async start(): Promise<void> {
    const c = this.config;
    const { log } = this.deps;
    if (c.lanPort !== undefined) {
      this.trust = await TrustStore.open(c.stateDir, c.lanMaxRevoked, log);
      const checker = new TokenChecker(this.trust, () => this.#ownerEmail());
      this.#server = new LanServer(
        {
          host: c.lanHost, port: c.lanPort, deviceId: c.deviceId, maxConnections: Math.max(64, c.concurrency * 4),
          tls: c.lanTlsCert && c.lanTlsKey ? { certFile: c.lanTlsCert, keyFile: c.lanTlsKey } : undefined,
        },
        { client: this.deps.client, checker, log, onWrite: this.deps.onWrite },
      );
      await this.#server.start();
    }
    if (c.discovery) {
      this.#udp = new UdpDiscoveryResponder(
        { port: c.discoveryPort, replyPort: c.discoveryReplyPort },
        { log, name: () => this.#name(), url: (local) => this.#url(local) },
      );
      await this.#udp.start();
      if (c.mdns) {
        this.#mdns = new MdnsAdvertiser({ interface: c.mdnsInterface }, () => {
          const addresses = advertisedAddresses(c.mdnsInterface).map((a) => a.address);
          return { deviceId: c.deviceId, name: this.#name(), port: this.#server?.port ?? Number(this.api.port || (this.api.protocol === 'https:' ? 443 : 80)), api: this.#url(addresses[0] ?? '127.0.0.1'), addresses };
        }, log);
        try {
          await this.#mdns.start();
        } catch (err) {
          // mDNS is a convenience; UDP discovery and the LAN port work without it.
          log.warn('mDNS advertising is off: its socket could not be opened', { err: describeError(err) });
          this.#mdns = undefined;
        }
      }
    }
    this.#scheduleInfo(0);
  }

  /** New device info (the agent fetched GET /device). */
  onInfo(info: Record<string, unknown>): void {
    this.#infoKnown = true;
    this.trust?.setOwnerEmail(typeof info.email === 'string' ? info.email : null);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#infoTimer);
    await Promise.all([this.#server?.close(), this.#udp?.close(), this.#mdns?.close()]);
    await this.trust?.flush();
  }

  #scheduleInfo(ms: number): void {
    if (this.#closed) return;
    this.#infoTimer = setTimeout(() => {
      this.deps.refreshInfo().finally(() => this.#scheduleInfo(this.#infoKnown ? INFO_REFRESH_MS : INFO_RETRY_MS));
    }, ms);
    this.#infoTimer.unref();
  }

  /** The owner from the latest device info; until the REST service has answered, the one saved last time. */
  #ownerEmail(): string | null {
    if (!this.#infoKnown) return this.trust?.ownerEmail ?? null;
    const e = this.deps.info().email;
    return typeof e === 'string' && e.trim() ? e.trim().toLowerCase() : null;
  }

  #name(): string {
    const n = this.deps.info().name;
    return typeof n === 'string' && n.trim() ? n : this.config.deviceId;
  }

  /** The REST API URL for a LAN client that reaches this device at `local`. */
  #url(local: string): string {
    if (this.#server) return `${this.#server.secure ? 'https' : 'http'}://${local}:${this.#server.port}`;
    return this.api.toString().replace(/\/$/, '');
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '[::1]' || host === '::1';
}
