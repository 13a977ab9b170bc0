/**
 * The device-changes channel (seed 002 "Reducing number of REDIS queries"): an edge says on the Bus
 * which node holds a device the moment it takes the tunnel, and that none does once it is gone.
 * Fronts keep their device → node cache by it with no Presence read; the edge that held the device
 * before drops its stale tunnel. Bytes, not JSON: `NODE_ID SINCE_MS` (NODE_ID empty once offline).
 */
export const deviceNodeTopic = (deviceId: string): string => `devices/${deviceId}/node`;
export const DEVICE_NODE_FILTER = 'devices/+/node';

export interface DeviceNodeChange {
  deviceId: string;
  /** The node now holding the device; undefined when it went offline. */
  nodeId: string | undefined;
  /** When that happened on the publishing node (ms since the epoch): older news never overrides newer. */
  at: number;
}

export function encodeDeviceNode(nodeId: string | undefined, at: number): Buffer {
  return Buffer.from(`${nodeId ?? ''} ${at}`, 'latin1');
}

/** Undefined for a topic or payload that is not a device-changes message. */
export function decodeDeviceNode(topic: string, payload: Buffer): DeviceNodeChange | undefined {
  if (!topic.startsWith('devices/') || !topic.endsWith('/node') || topic.length <= 13) return undefined;
  const text = payload.toString('latin1');
  const space = text.indexOf(' ');
  const at = Number(text.slice(space + 1));
  if (space < 0 || !Number.isFinite(at)) return undefined;
  return { deviceId: topic.slice(8, -5), nodeId: space === 0 ? undefined : text.slice(0, space), at };
}
