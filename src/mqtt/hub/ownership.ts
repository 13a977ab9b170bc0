/**
 * Which devices each owner email has, in memory, so the broker's synchronous ACL hooks can answer a
 * user's "is devices/{id}/... mine?" without a database query. Ownership is as in the REST API: the
 * email a device reports (DeviceRecord.email) is its owner's. Loaded whole at start; a device's entry is
 * refreshed when it connects (tunnel or MQTT), and a user's devices when the user authenticates, so a
 * device registered while the hub runs is seen by its owner's next connection at the latest. Each
 * change is told to the onChange listeners (the broker then asks about its subscriptions again).
 */
import type { DeviceRecord, Store } from '../../store/store.js';

export class DeviceOwnership {
  readonly #emailOf = new Map<string, string>();
  readonly #devicesOf = new Map<string, Set<string>>();

  #listeners: Array<() => void> = [];

  constructor(private readonly store: Store) {}

  /** Calls `fn` after each change of a device's owner (the ACL's answers about that device change with it). */
  onChange(fn: () => void): void {
    this.#listeners.push(fn);
  }

  async load(): Promise<void> {
    for (const d of await this.store.listDevices()) this.set(d);
  }

  owns(email: string, deviceId: string): boolean {
    return this.#emailOf.get(deviceId) === email.toLowerCase();
  }

  /** Records (or moves, or clears) a device's owner from its record. */
  set(d: Pick<DeviceRecord, 'id' | 'email'>): void {
    const old = this.#emailOf.get(d.id);
    const email = d.email?.toLowerCase() ?? undefined;
    if (old === email) return;
    this.#move(d.id, old, email);
    for (const fn of this.#listeners) fn();
  }

  #move(id: string, old: string | undefined, email: string | undefined): void {
    if (old !== undefined) {
      const set = this.#devicesOf.get(old);
      set?.delete(id);
      if (set?.size === 0) this.#devicesOf.delete(old);
    }
    if (email === undefined) {
      this.#emailOf.delete(id);
      return;
    }
    this.#emailOf.set(id, email);
    let set = this.#devicesOf.get(email);
    if (set === undefined) this.#devicesOf.set(email, (set = new Set()));
    set.add(id);
  }

  /** Re-reads one device (it connected: what it reports decides its owner). */
  async refreshDevice(deviceId: string): Promise<void> {
    const d = await this.store.getDevice(deviceId);
    if (d !== undefined) this.set(d);
    else this.set({ id: deviceId, email: null });
  }

  /** Re-reads the devices of one owner. */
  async refreshOwner(email: string): Promise<void> {
    const lower = email.toLowerCase();
    const now = await this.store.listDevicesByEmail(lower);
    const ids = new Set(now.map((d) => d.id));
    for (const id of [...(this.#devicesOf.get(lower) ?? [])]) if (!ids.has(id)) this.set({ id, email: null });
    for (const d of now) this.set(d);
  }
}
