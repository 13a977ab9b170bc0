/**
 * The REST side's device events on MQTT: a relayed device notification (Bus `devices/{id}/events`) is
 * published on MQTT topic `devices/{id}/events` as it came (the device's own bytes), and device up/down
 * (Bus `devices/{id}/status`, `{"online":true,"at":"<ISO time>"}`) on `devices/{id}/status`, retained,
 * so a subscriber learns the current state at once. Both at QoS 1: a persistent session gets them
 * queued while it is offline. Reading the Bus (not the tunnel server) keeps this right when scaled out:
 * every node receives each event from the Bus and publishes it to its own subscribers only (`local`,
 * not forwarded), so each subscriber in the cluster gets it once.
 */
import type { Logger } from 'pino';
import type { Bus } from '../../core/bus.js';
import type { Broker } from '../broker.js';
import type { DeviceOwnership } from './ownership.js';

export function bridgeDeviceEvents(bus: Bus, broker: Broker, ownership: DeviceOwnership, log: Logger): () => void {
  const publish = (topic: string, payload: Buffer, retain: boolean): void => {
    try {
      broker.publish({ topic, payload, qos: 1, retain, local: true }).catch((err: unknown) => log.error({ err, topic }, 'mqtt bridge: storing a device event failed'));
    } catch (err) {
      // A device id that is not a valid topic level ('+', '#'): nothing can subscribe to it anyway.
      log.warn({ topic, err: (err as Error).message }, 'mqtt bridge: device event not published');
    }
  };
  const unsubscribe = [
    bus.subscribe('devices/+/events', (topic, payload) => publish(topic, payload, false)),
    bus.subscribe('devices/+/status', (topic, payload) => {
      publish(topic, payload, true);
      // A device that (re)connects has just reported who owns it: the ACL must know before its owner asks.
      const deviceId = topic.slice('devices/'.length, topic.lastIndexOf('/'));
      ownership.refreshDevice(deviceId).catch((err: unknown) => log.error({ err, deviceId }, 'mqtt: reading device owner failed'));
    }),
  ];
  return () => {
    for (const u of unsubscribe) u();
  };
}

/**
 * At start, before any tunnel is up: a retained `"online":true` left by a hub that stopped without
 * publishing its devices' offline status (a crash, a kill) is corrected to offline. A device that
 * connects publishes online again. (Embedded hub: this process holds every tunnel.)
 */
export async function correctStaleStatus(broker: Broker, log: Logger): Promise<void> {
  const stale: string[] = [];
  for await (const m of broker.retainedMatching('devices/+/status')) if (m.payload.includes('"online":true')) stale.push(m.topic);
  const at = new Date().toISOString();
  for (const topic of stale) await broker.publish({ topic, payload: `{"online":false,"at":"${at}"}`, qos: 1, retain: true });
  if (stale.length > 0) log.info({ devices: stale.length }, 'mqtt: stale online statuses set to offline');
}
