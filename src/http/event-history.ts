/**
 * Recent device events, kept so an SSE client that reconnects with Last-Event-ID (WHATWG HTML
 * §9.2.4) gets what it missed, or learns that some of it is gone.
 *
 * Ids are one increasing sequence for the whole process, so a stream over many devices can resume
 * from a single id. They start at Date.now() * 1000 so that a restarted hub issues larger ids than the
 * one before it, as long as that one averaged under 1000 events per millisecond and the clock did not
 * go back (see since() for what happens when it did). As plain numbers they stay exact
 * (< 2^53) until the year 2255, and travel in JSON and `id:` lines without conversion.
 *
 * Memory is bounded twice: `eventHistory` events per device, and `maxBytes` (estimated) for all
 * devices together, the oldest events going first, so many devices or large payloads cannot exhaust it.
 * A device is remembered only while it has events held.
 */

export type HistoryEventType = 'notification' | 'status';

export interface HistoryEvent {
  readonly id: number;
  readonly deviceId: string;
  readonly type: HistoryEventType;
  readonly data: string;
}

export interface EventHistoryOptions {
  /** Events kept per device (config `eventHistory`); 0 keeps none. Default 256. */
  eventHistory?: number;
  /** Estimated bytes all devices' events may take together; the oldest go first. Default 64 MiB. */
  maxBytes?: number;
  /** Wall clock in ms, for the first id. Default Date.now. */
  now?: () => number;
}

export interface SinceResult {
  /** Events after the given id, in id order. */
  events: HistoryEvent[];
  /**
   * False when events after the given id may be missing: they fell out of the history, or the id is
   * older than this process's history, or it is unknown to it. The caller should tell the client.
   */
  complete: boolean;
}

export const DEFAULT_EVENT_HISTORY = 256;
export const DEFAULT_HISTORY_MAX_BYTES = 64 * 1024 * 1024;

/** Rough cost of an entry beyond its strings: the event and entry objects and their fields. */
const ENTRY_OVERHEAD_BYTES = 160;

/** An event in two doubly linked lists: its device's, and the global one in id order. */
interface Entry {
  readonly event: HistoryEvent;
  readonly bytes: number;
  log: DeviceLog;
  devPrev: Entry | undefined;
  devNext: Entry | undefined;
  prev: Entry | undefined;
  next: Entry | undefined;
}

interface DeviceLog {
  head: Entry | undefined;
  tail: Entry | undefined;
  count: number;
  /** Id of the newest event of this device that was dropped; 0 when none was. */
  lostUpTo: number;
}

/**
 * What the SSE routes need of a history. `MemoryEventHistory` holds one process's and answers
 * synchronously; RedisEventHistory is shared by the nodes, so Last-Event-ID resumes on any front, and
 * answers with promises. Both pass test/event-history-contract.ts.
 */
export interface EventHistory {
  /** The newest id issued (shared: issued or seen by this node; before the first append: one less than the first id). */
  readonly lastId: number;
  /**
   * Records an event and gives it the next id. The event is returned whether or not it could be kept.
   * `messageId` (the Bus's, the same on every node) makes a shared history record an event that every
   * node appends once, all of them getting the one id.
   */
  append(deviceId: string, type: HistoryEventType, data: string, messageId?: Buffer): HistoryEvent | Promise<HistoryEvent>;
  /** The events of these devices after `lastId`, and whether some may be missing. */
  since(deviceIds: Iterable<string>, lastId: number): SinceResult | Promise<SinceResult>;
  /** Drops a deleted device's events. */
  forget(deviceId: string): void | Promise<void>;
}

export class MemoryEventHistory implements EventHistory {
  readonly #perDevice: number;
  readonly #maxBytes: number;
  readonly #logs = new Map<string, DeviceLog>();
  /** The id before the first one this instance issues: the history reaches back no further. */
  readonly #origin: number;
  /**
   * The newest id lost by any device whose log was emptied and removed. A device with no log may have
   * lost events up to here: conservative, but it keeps memory per device only while events are held.
   */
  #floor = 0;
  #lastId: number;
  #head: Entry | undefined;
  #tail: Entry | undefined;
  #bytes = 0;
  #size = 0;

  constructor(options: EventHistoryOptions = {}) {
    this.#perDevice = options.eventHistory ?? DEFAULT_EVENT_HISTORY;
    this.#maxBytes = options.maxBytes ?? DEFAULT_HISTORY_MAX_BYTES;
    if (!Number.isInteger(this.#perDevice) || this.#perDevice < 0) throw new RangeError('eventHistory must be an integer >= 0');
    if (!(this.#maxBytes >= 0)) throw new RangeError('maxBytes must be >= 0');
    this.#origin = Math.floor((options.now ?? Date.now)()) * 1000 - 1;
    this.#lastId = this.#origin;
  }

  /** The newest id issued (before the first append: one less than the first id). */
  get lastId(): number {
    return this.#lastId;
  }

  /** Devices with events held. */
  get deviceCount(): number {
    return this.#logs.size;
  }

  /** Events held, all devices together. */
  get size(): number {
    return this.#size;
  }

  /** Estimated bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Records an event and gives it the next id. The event is returned whether or not it could be kept. */
  append(deviceId: string, type: HistoryEventType, data: string): HistoryEvent {
    const event: HistoryEvent = Object.freeze({ id: ++this.#lastId, deviceId, type, data });
    let log = this.#logs.get(deviceId);
    if (log === undefined) {
      log = { head: undefined, tail: undefined, count: 0, lostUpTo: this.#floor };
      this.#logs.set(deviceId, log);
    }
    // JS strings are UTF-16 in memory: two bytes a code unit is the honest estimate.
    const bytes = ENTRY_OVERHEAD_BYTES + 2 * (data.length + deviceId.length);
    const entry: Entry = { event, bytes, log, devPrev: log.tail, devNext: undefined, prev: this.#tail, next: undefined };
    if (log.tail) log.tail.devNext = entry;
    else log.head = entry;
    log.tail = entry;
    log.count++;
    if (this.#tail) this.#tail.next = entry;
    else this.#head = entry;
    this.#tail = entry;
    this.#bytes += bytes;
    this.#size++;

    if (log.count > this.#perDevice) this.#drop(log.head!);
    // Ids only grow, so the global oldest is also the oldest of its device: drops stay in id order
    // per device, which is what makes `lostUpTo` a sufficient record of what went missing.
    while (this.#bytes > this.#maxBytes && this.#head !== undefined) this.#drop(this.#head);
    return event;
  }

  /**
   * The events of `deviceIds` with an id above `lastId`, in id order (merged across devices, for the
   * "all my devices" stream).
   *
   * An id above any issued here is not one of ours (another node's, or an earlier run's whose clock was
   * ahead, e.g. a Raspberry Pi booting without RTC before NTP): everything held is returned and
   * `complete` is false, rather than silently returning nothing until ids catch up.
   */
  since(deviceIds: Iterable<string>, lastId: number): SinceResult {
    const unknown = lastId > this.#lastId;
    let complete = !unknown && lastId >= this.#origin;
    const events: HistoryEvent[] = [];
    let sources = 0;
    for (const deviceId of new Set(deviceIds)) {
      const log = this.#logs.get(deviceId);
      if (log === undefined) {
        if (this.#floor > lastId) complete = false;
        continue;
      }
      if (log.lostUpTo > lastId) complete = false;
      // Clients resume from a recent id, so walking back from the newest event is short.
      let from = log.tail;
      if (unknown) from = undefined;
      else while (from !== undefined && from.event.id > lastId) from = from.devPrev;
      const first = from === undefined ? log.head : from.devNext;
      if (first !== undefined) sources++;
      for (let e = first; e !== undefined; e = e.devNext) events.push(e.event);
    }
    // Each device's run is already sorted; the engine's merge sort takes such runs in near-linear time.
    if (sources > 1) events.sort((a, b) => a.id - b.id);
    return { events, complete };
  }

  /** Drops a device's events and its record of losses, e.g. when the device is deleted. */
  forget(deviceId: string): void {
    const log = this.#logs.get(deviceId);
    if (log === undefined) return;
    while (log.head !== undefined) this.#drop(log.head, false);
    this.#logs.delete(deviceId);
  }

  /** Unlinks an entry; a log left empty is removed unless `prune` is false (forget() removes it itself). */
  #drop(entry: Entry, prune = true): void {
    const log = entry.log;
    if (entry.devPrev) entry.devPrev.devNext = entry.devNext;
    else log.head = entry.devNext;
    if (entry.devNext) entry.devNext.devPrev = entry.devPrev;
    else log.tail = entry.devPrev;
    log.count--;
    if (entry.event.id > log.lostUpTo) log.lostUpTo = entry.event.id;

    if (entry.prev) entry.prev.next = entry.next;
    else this.#head = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else this.#tail = entry.prev;
    this.#bytes -= entry.bytes;
    this.#size--;
    entry.devPrev = entry.devNext = entry.prev = entry.next = undefined;
    if (prune && log.count === 0) {
      this.#logs.delete(entry.event.deviceId);
      if (log.lostUpTo > this.#floor) this.#floor = log.lostUpTo;
    }
  }
}
