/** Which node holds a device's tunnel. Embedded: a Map; scaled: Redis keys with a TTL per node. */
export interface Presence {
  readonly nodeId: string;
  set(deviceId: string): void;
  delete(deviceId: string): void;
  /** The node holding the device, or undefined when it is offline everywhere. */
  get(deviceId: string): string | undefined;
  onlineCount(): number;
}

export class MapPresence implements Presence {
  readonly #where = new Map<string, string>();
  constructor(readonly nodeId: string) {}
  set(deviceId: string): void {
    this.#where.set(deviceId, this.nodeId);
  }
  delete(deviceId: string): void {
    this.#where.delete(deviceId);
  }
  get(deviceId: string): string | undefined {
    return this.#where.get(deviceId);
  }
  onlineCount(): number {
    return this.#where.size;
  }
}
