// What main.ts tells a load generator (load.ts) to do, and what the generator reports back.

export interface GenSpec {
  port: number;
  /** Subscribers connect here instead of `port` (a cluster: publishers on one node, subscribers on another). */
  subPort?: number;
  /** Client id prefix, unique across the run. */
  name: string;
  /** Subscribers first (all subscribed before anyone publishes), then publishers; idle clients only connect. */
  subs: Clients;
  pubs: Clients;
  idle: number;
  qos: 0 | 1;
  payloadBytes: number;
  /** Copies of each message the subscribers of this process receive (1 for fan-in and point-to-point). */
  fanout: number;
  /** Messages per second from all publishers of this process; 0 = closed loop at full speed. */
  ratePerS: number;
  /**
   * Closed loop: copies published and not yet received by this process's subscribers, at most. Kept
   * below every broker's per-subscriber queue limit, so that no broker drops a message for being behind.
   */
  inflight: number;
  /** Full speed: PUBLISH packets per socket write. */
  batch: number;
  /** QoS 1: PUBLISHes a publisher may have awaiting PUBACK, as a client's own window would. */
  pubackWindow: number;
  keepaliveS: number;
  /** CONNECTs in flight at once. */
  connectConcurrency: number;
}

export interface Clients {
  conns: number;
  /** `{i}` in the topic or filter is first + the connection's number. */
  first: number;
  /** Publishers: the topic; subscribers: the filter. */
  topic: string;
}

export interface GenReport {
  /** PUBLISH packets written by publishers since the mark. */
  sent: number;
  /** PUBLISH packets read by subscribers since the mark: the only messages a broker is credited for. */
  received: number;
  /** PUBACKs received by publishers since the mark. */
  acked: number;
  /** Paced: messages not sent on time because a publisher's PUBACK window was full. */
  behind: number;
  /** Closed loop: copies written off after a second without progress (a broker dropped them). */
  lost: number;
  /** Connections that closed after they were up. */
  dropped: number;
  /** Latency histogram since the mark: [bucket, count] pairs, BUCKET_US wide. */
  hist: Array<[number, number]>;
}

export const BUCKET_US = 10;
