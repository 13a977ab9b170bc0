import type { RemoteInfo } from 'node:dgram';
import makeMdns from 'multicast-dns';
import type { Answer, Packet } from 'dns-packet';
import { describeError, type Logger } from '../log.js';
import { allRecords, recordsFor, type ServiceDescription } from './mdns-records.js';

const MDNS_PORT = 5353;
/** RFC 6762 §6.7: answers to a legacy (one-shot, not port 5353) query carry TTLs of at most 10 s. */
const LEGACY_TTL_S = 10;
/** RFC 6762 §6: a record is multicast at most once per second. */
const MIN_MULTICAST_INTERVAL_MS = 1000;
/** Questions of one query that are answered; a query with more is junk or an attack. */
const MAX_QUESTIONS = 16;

export interface MdnsAdvertiserOptions {
  /** IPv4 address of the one interface to use; all interfaces otherwise. */
  interface?: string | undefined;
}

/**
 * Advertises the agent as a DNS-SD service `_cloudrest._tcp` over mDNS (RFC 6762, RFC 6763), with TXT
 * `id`, `name` and `api`, using multicast-dns for the sockets and the packet codec. It answers
 * queries (a legacy one-shot query, like `dig -p 5353 @224.0.0.251`, by unicast to its source port),
 * announces itself at start and says goodbye (TTL 0) at stop.
 */
export class MdnsAdvertiser {
  #mdns: ReturnType<typeof makeMdns> | undefined;
  readonly #lastMulticast = new Map<string, number>();
  #announceTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly opts: MdnsAdvertiserOptions,
    private readonly describe: () => ServiceDescription,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const mdns = makeMdns({ ...(this.opts.interface ? { interface: this.opts.interface } : {}), port: MDNS_PORT });
    mdns.on('warning', (err: Error) => this.log.debug('mDNS warning', { err: describeError(err) }));
    await new Promise<void>((resolve, reject) => {
      mdns.once('ready', resolve);
      mdns.once('error', reject);
    });
    mdns.on('error', (err: Error) => this.log.warn('mDNS error', { err: describeError(err) }));
    mdns.on('query', (q: Packet, rinfo: RemoteInfo) => this.#onQuery(q, rinfo));
    this.#mdns = mdns;
    // RFC 6762 §8.3: announce twice, one second apart.
    this.#announce();
    this.#announceTimer = setTimeout(() => this.#announce(), 1000);
    this.#announceTimer.unref();
  }

  async close(): Promise<void> {
    const mdns = this.#mdns;
    if (!mdns) return;
    this.#mdns = undefined;
    clearTimeout(this.#announceTimer);
    await new Promise<void>((r) => mdns.respond({ answers: allRecords(this.describe(), 0) }, () => r()));
    await new Promise<void>((r) => mdns.destroy(() => r()));
  }

  #announce(): void {
    this.#mdns?.respond({ answers: allRecords(this.describe()) }, (err?: Error | null) => {
      if (err) this.log.debug('mDNS announcement not sent', { err: describeError(err) });
    });
  }

  #onQuery(q: Packet, rinfo: RemoteInfo): void {
    const mdns = this.#mdns;
    const questions = q.questions ?? [];
    if (!mdns || questions.length === 0 || questions.length > MAX_QUESTIONS) return;
    const legacy = rinfo.port !== MDNS_PORT;
    const d = this.describe();
    const answers: Answer[] = [];
    const additionals: Answer[] = [];
    const now = Date.now();
    for (const question of questions) {
      const r = recordsFor(d, question.name, question.type, legacy ? LEGACY_TTL_S : undefined);
      if (r.answers.length === 0) continue;
      const key = `${question.name.toLowerCase()}/${question.type}`;
      if (!legacy) {
        const last = this.#lastMulticast.get(key);
        if (last !== undefined && now - last < MIN_MULTICAST_INTERVAL_MS) continue;
        this.#lastMulticast.set(key, now);
      }
      answers.push(...r.answers);
      for (const x of r.additionals) if (!additionals.some((y) => sameRecord(x, y))) additionals.push(x);
    }
    if (answers.length === 0) return;
    if (this.#lastMulticast.size > 256) this.#lastMulticast.clear();
    const done = (err?: Error | null): void => {
      if (err) this.log.debug('mDNS answer not sent', { to: rinfo.address, err: describeError(err) });
    };
    // RFC 6762 §6.7: a legacy querier gets a unicast answer echoing its id and questions.
    if (legacy) mdns.respond({ id: q.id, questions, answers, additionals }, { port: rinfo.port, address: rinfo.address }, done);
    else mdns.respond({ answers, additionals }, done);
  }
}

function sameRecord(a: Answer, b: Answer): boolean {
  return a.name === b.name && a.type === b.type && JSON.stringify((a as { data?: unknown }).data) === JSON.stringify((b as { data?: unknown }).data);
}
