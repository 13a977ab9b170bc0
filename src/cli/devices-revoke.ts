/**
 * `cloudrest devices revoke|unrevoke ID`: marks a device revoked in the database (its tunnel and MQTT
 * connects are refused from then on), then tells a hub running on the same data folder through its
 * admin socket (src/admin/), which closes the device's live connections at once. Without a running hub
 * the database change alone is enough: the device is refused when it next connects. Scaled out
 * (`--redis`), the command tells every node on the Bus instead, and the node holding the device's
 * tunnel closes it (src/admin/device-updates.ts).
 */
import { askHub, type HubAnswer } from '../admin/admin-client.js';
import { DEVICE_UPDATED_TOPIC } from '../admin/device-updates.js';
import { RedisBus } from '../cluster/redis-bus.js';
import { openRedis } from '../cluster/redis-connection.js';
import { hubOptions } from '../config/hub-options.js';
import { loadConfig, helpText } from '../config/load.js';
import type { OptionTable } from '../config/option.js';
import { dataJsonOptions, UsageError, withStore } from './admin.js';
import { oneArgument } from './factory-keys.js';

/** The hub's own `--redis` and `--redis-key-prefix`: the nodes are told where they listen. */
export const revokeOptions = {
  ...dataJsonOptions,
  redis: hubOptions.redis,
  redisKeyPrefix: hubOptions.redisKeyPrefix,
} as const satisfies OptionTable;

/** Publishes the device update to every node; resolves with how many nodes received it. */
async function tellNodes(url: string, keyPrefix: string, id: string): Promise<number> {
  const redis = await openRedis(url, 'cloudrest-cli');
  try {
    const bus = await RedisBus.open({ redis, keyPrefix, onError: () => undefined });
    try {
      return await bus.publishCounted(DEVICE_UPDATED_TOPIC, Buffer.from(id));
    } finally {
      await bus.close();
    }
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

function hubSummary(h: HubAnswer): string {
  if (!h.reached) return `${h.why}; the hub reads the change when the device next connects`;
  const a = h.answer;
  if (a.ok !== true) return `the running hub answered an error: ${String(a.error)}`;
  if (a.revoked !== true) return 'the running hub knows';
  const parts = [a.tunnelClosed === true ? 'its tunnel on the running hub was closed' : 'it had no tunnel on the running hub'];
  if (typeof a.mqttClosed === 'number' && a.mqttClosed > 0) parts.push(`${a.mqttClosed} MQTT connection${a.mqttClosed === 1 ? '' : 's'} closed`);
  return parts.join('; ');
}

async function setRevoked(argv: string[], out: (s: string) => void, revoke: boolean): Promise<void> {
  const { config, positionals } = loadConfig(revokeOptions, { argv });
  const id = oneArgument(positionals, 'device id', `cloudrest devices ${revoke ? 'revoke' : 'unrevoke'} ID [--data DIR] [--store URL] [--redis URL]`);
  const revokedAt = await withStore(config, async (s) => {
    const d = await s.getDevice(id);
    if (d === undefined) throw new UsageError(`no device ${id}`);
    // Revoking again keeps the first time: it says when the device stopped being trusted.
    const at = revoke ? (d.revokedAt ?? Date.now()) : null;
    await s.setDeviceRevoked(id, at);
    return at;
  });
  if (config.redis !== undefined) {
    const nodes = await tellNodes(config.redis, config.redisKeyPrefix, id);
    const at = revokedAt === null ? null : new Date(revokedAt).toISOString();
    if (config.json) out(JSON.stringify({ id, revokedAt: at, nodesTold: nodes }));
    else if (revoke) out(`device ${id} revoked (${at!}); ${nodes} node${nodes === 1 ? '' : 's'} told, and the one holding its tunnel closes it`);
    else out(`device ${id} re-enabled; ${nodes} node${nodes === 1 ? '' : 's'} told; its agent is accepted at its next retry`);
    return;
  }
  const hub = await askHub(config.data, { op: 'device-updated', id });
  if (config.json) {
    out(JSON.stringify({ id, revokedAt: revokedAt === null ? null : new Date(revokedAt).toISOString(), hub: hub.reached ? hub.answer : { reached: false, why: hub.why } }));
    return;
  }
  if (revoke) out(`device ${id} revoked (${new Date(revokedAt!).toISOString()}); ${hubSummary(hub)}`);
  else out(`device ${id} re-enabled; its agent is accepted at its next retry${hub.reached ? '' : ` (${hub.why})`}`);
}

export const devicesRevoke = (argv: string[], out: (s: string) => void): Promise<void> => setRevoked(argv, out, true);
export const devicesUnrevoke = (argv: string[], out: (s: string) => void): Promise<void> => setRevoked(argv, out, false);

export const devicesRevokeHelp = {
  revoke: () => helpText('cloudrest devices revoke ID [--data DIR] [--store URL] [--redis URL] [--json]', revokeOptions),
  unrevoke: () => helpText('cloudrest devices unrevoke ID [--data DIR] [--store URL] [--redis URL] [--json]', revokeOptions),
};
