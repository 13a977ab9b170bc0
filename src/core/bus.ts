/**
 * Pub/sub between the hub's parts (and, scaled out, between nodes): device notifications,
 * device up/down, later MQTT routing. Topics are `/`-separated; filters use MQTT wildcards `+` and `#`.
 * Payloads are bytes: no JSON on the hot path.
 */
export type BusHandler = (topic: string, payload: Buffer, messageId?: Buffer) => void;
// `messageId`: set by a bus between nodes, the same on every node that receives one publish and
// different for every publish, so nodes that all act on a message can do so once between them (the
// SSE history records each event once). Undefined on LocalBus: one process, one delivery.


export interface Bus {
  publish(topic: string, payload: Buffer): void;
  /** Returns a function that removes this subscription. */
  subscribe(filter: string, handler: BusHandler): () => void;
  close(): Promise<void>;
}
