/**
 * MQTT authorization: the ACL file's rules (docs/mqtt.md "ACL file"), then the defaults. Pure: the
 * identities and the device ownership it is asked about come from the caller.
 *
 *   # allow|deny  publish|subscribe|all  WHO  PATTERN
 *   allow subscribe everyone     public/#
 *   deny  publish   device:d_42  devices/d_42/config
 *   allow all       users        users/%u/#
 *
 * Rules are read top to bottom; the first rule that decides wins. A topic (publish) is decided by the
 * first rule whose pattern matches it. A subscription filter is allowed only if every topic it could
 * match is allowed: by the first allow rule whose pattern covers the whole filter, unless a deny rule
 * above it overlaps the filter; subscription() also grants a filter only some of whose topics are
 * allowed, the broker then checking each message's topic (allows() on the topic). When no rule decides, the defaults apply: a device may use
 * `devices/{its id}/#`, a user `devices/{id}/#` of each device they own; anything else is refused.
 *
 * A shared subscription (`$share/{group}/{filter}`) is decided on its filter, whatever the group.
 *
 * Before any rule: `devices/{id}/status` is the hub's (bridge.ts publishes each device's online state
 * there, retained), so no client may publish on it, whatever the rules say; a device or its owner could
 * otherwise show it online while it is not.
 */
import { validateTopicFilter } from '../../core/topic-tree.js';
import { ConfigError } from '../../config/load.js';
import { SHARE_PREFIX } from '../subscription.js';
import { covers, intersection, overlaps } from './topic-cover.js';

export type Identity =
  | { readonly kind: 'device'; readonly id: string }
  | { readonly kind: 'user'; readonly id: string; readonly email: string }
  | { readonly kind: 'anonymous' };

export type AclAction = 'publish' | 'subscribe';

type Who = { kind: 'everyone' } | { kind: 'anonymous' } | { kind: 'users' } | { kind: 'devices' } | { kind: 'user'; email: string } | { kind: 'device'; id: string };

export interface AclRule {
  readonly allow: boolean;
  readonly actions: readonly AclAction[];
  readonly who: Who;
  readonly pattern: string;
  /** Pattern levels, ready when the pattern has no placeholder. */
  readonly levels: readonly string[] | undefined;
  /** Where it came from, for messages: `file:line`. */
  readonly source: string;
}

const PLACEHOLDER = /%[ucd]/g;
const BAD_VALUE = /[/+#\0]/;

/** Parses an ACL file's text; throws ConfigError naming the file and line of the first bad rule. */
export function parseAcl(text: string, name = 'ACL'): AclRule[] {
  const rules: AclRule[] = [];
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    // Only whole lines are comments: '#' is also the multi-level wildcard.
    const line = lines[n]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const source = `${name}:${n + 1}`;
    const fail = (why: string): never => {
      throw new ConfigError(`${source}: ${why} (expected "allow|deny publish|subscribe|all WHO PATTERN")`);
    };
    const parts = line.split(/\s+/);
    if (parts.length !== 4) fail(`${parts.length} fields`);
    const [verb, action, whoText, pattern] = parts as [string, string, string, string];
    if (verb !== 'allow' && verb !== 'deny') fail(`unknown verb ${JSON.stringify(verb)}`);
    const actions: AclAction[] = action === 'all' ? ['publish', 'subscribe'] : action === 'publish' || action === 'subscribe' ? [action] : fail(`unknown action ${JSON.stringify(action)}`);
    const who = parseWho(whoText) ?? fail(`unknown WHO ${JSON.stringify(whoText)}: everyone, anonymous, users, devices, user:EMAIL or device:ID`);
    if (/%[^ucd]|%$/.test(pattern)) fail('placeholders are %u, %c and %d');
    const problem = validateTopicFilter(pattern.replace(PLACEHOLDER, 'x'));
    if (problem !== null) fail(`pattern ${JSON.stringify(pattern)}: ${problem}`);
    const levels = pattern.includes('%') ? undefined : pattern.split('/');
    rules.push({ allow: verb === 'allow', actions, who, pattern, levels, source });
  }
  return rules;
}

function parseWho(s: string): Who | undefined {
  if (s === 'everyone' || s === 'anonymous' || s === 'users' || s === 'devices') return { kind: s };
  if (s.startsWith('user:') && s.length > 5) return { kind: 'user', email: s.slice(5).toLowerCase() };
  if (s.startsWith('device:') && s.length > 7) return { kind: 'device', id: s.slice(7) };
  return undefined;
}

function applies(who: Who, id: Identity): boolean {
  switch (who.kind) {
    case 'everyone':
      return true;
    case 'anonymous':
      return id.kind === 'anonymous';
    case 'users':
      return id.kind === 'user';
    case 'devices':
      return id.kind === 'device';
    case 'user':
      return id.kind === 'user' && id.email === who.email;
    case 'device':
      return id.kind === 'device' && id.id === who.id;
  }
}

/**
 * The pattern's levels for this client. %u is the account name (a user's email, a device's id), never
 * the CONNECT user name, which a client could choose; %c the client id; %d the device id. A value that
 * is missing or holds '/', '+', '#' cannot be put in a topic level: an allow rule then does not apply,
 * and a deny rule applies with '+' in its place (refusing more, never less).
 */
function levelsFor(rule: AclRule, id: Identity, clientId: string): readonly string[] | undefined {
  if (rule.levels !== undefined) return rule.levels;
  let unusable = false;
  const value = (v: string | undefined): string => {
    if (v === undefined || v === '' || BAD_VALUE.test(v)) {
      unusable = true;
      return '\0';
    }
    return v;
  };
  const text = rule.pattern.replace(PLACEHOLDER, (p) =>
    p === '%c' ? value(clientId) : p === '%d' ? value(id.kind === 'device' ? id.id : undefined) : value(id.kind === 'user' ? id.email : id.kind === 'device' ? id.id : undefined),
  );
  if (!unusable) return text.split('/');
  if (rule.allow) return undefined;
  return text.split('/').map((l) => (l.includes('\0') ? '+' : l));
}

/**
 * The filter a subscription matches topics with: after `$share/{group}/` for a shared one (5.0 §4.8.2),
 * so rules and defaults decide on what it can receive, never on the share name.
 */
export function unshared(filter: string): string {
  if (!filter.startsWith(SHARE_PREFIX)) return filter;
  const slash = filter.indexOf('/', SHARE_PREFIX.length);
  return slash === -1 ? filter : filter.slice(slash + 1);
}

/** `devices/{id}/status`: written by the hub only. */
function isHubOwned(levels: readonly string[]): boolean {
  return levels.length === 3 && levels[0] === 'devices' && levels[2] === 'status';
}

export class Acl {
  constructor(
    private readonly rules: readonly AclRule[],
    /** Is this device the user's (their email is the one the device reports)? Synchronous: the broker's hooks are. */
    private readonly owns: (user: Identity & { kind: 'user' }, deviceId: string) => boolean,
  ) {}

  get size(): number {
    return this.rules.length;
  }

  /** May `id` publish on topic `name` (action publish) or subscribe to filter `name` (action subscribe)? */
  allows(id: Identity, action: AclAction, name: string, clientId: string): boolean {
    const wanted = (action === 'subscribe' ? unshared(name) : name).split('/');
    if (action === 'publish' && isHubOwned(wanted)) return false;
    for (const rule of this.rules) {
      if (!rule.actions.includes(action) || !applies(rule.who, id)) continue;
      const levels = levelsFor(rule, id, clientId);
      if (levels === undefined) continue;
      if (rule.allow ? covers(levels, wanted) : overlaps(levels, wanted)) return rule.allow;
    }
    return this.#byDefault(id, wanted);
  }

  /**
   * How much of `filter` `id` may subscribe to: every topic it can match ('all': allows() is true),
   * only some ('some': granted, each message's topic then checked with allows(), as Mosquitto does), or
   * none ('none': refused). 'some' needs one allow rule or default whose topics meet the filter's
   * outside every deny rule above it.
   */
  subscription(id: Identity, filter: string, clientId: string): 'all' | 'some' | 'none' {
    if (this.allows(id, 'subscribe', filter, clientId)) return 'all';
    return this.#someAllowed(id, unshared(filter).split('/'), clientId) ? 'some' : 'none';
  }

  #someAllowed(id: Identity, wanted: readonly string[], clientId: string): boolean {
    // Deny rules met so far that refuse part of the filter: topics an allow rule below them grants are refused if inside one.
    const denied: Array<readonly string[]> = [];
    const grants = (allowed: readonly string[]): string[] | undefined => {
      const meet = intersection(allowed, wanted);
      return meet === undefined || denied.some((d) => covers(d, meet)) ? undefined : meet;
    };
    for (const rule of this.rules) {
      if (!rule.actions.includes('subscribe') || !applies(rule.who, id)) continue;
      const levels = levelsFor(rule, id, clientId);
      if (levels === undefined) continue;
      if (rule.allow) {
        if (grants(levels) !== undefined) return true;
      } else if (covers(levels, wanted)) {
        return false;
      } else if (overlaps(levels, wanted)) {
        denied.push(levels);
      }
    }
    if (id.kind === 'anonymous') return false;
    const meet = grants(['devices', id.kind === 'device' ? id.id : '+', '#']);
    if (meet === undefined) return false;
    // A user's: devices they own. A filter naming one device must name one of theirs; a wildcard there
    // reaches each device they own at the time of the message (one claimed later too).
    const device = meet[1];
    return id.kind === 'device' || device === undefined || device === '+' || device === '#' || this.owns(id, device);
  }

  /** `devices/{id}/#` for a device's own id, or for a device the user owns. */
  #byDefault(id: Identity, levels: readonly string[]): boolean {
    if (id.kind === 'anonymous' || levels[0] !== 'devices' || levels.length < 2) return false;
    const device = levels[1]!;
    if (device === '+' || device === '#') return false;
    return id.kind === 'device' ? device === id.id : this.owns(id, device);
  }
}
