/** Broker counters, for $SYS topics and Prometheus metrics. Counters only grow; gauges go up and down. */
export interface StatsSnapshot {
  /** Gauge: open connections that completed CONNECT. */
  connections: number;
  /** Counter: connections accepted by CONNACK since start. */
  connectionsTotal: number;
  /** PUBLISH packets received from clients (or published by the server), by QoS. */
  messagesIn: [number, number, number];
  /** PUBLISH packets sent to clients, by QoS. */
  messagesOut: [number, number, number];
  /** Payload bytes of those PUBLISH packets, by QoS. */
  bytesIn: [number, number, number];
  bytesOut: [number, number, number];
  /** Bytes read from and written to client transports, all packets. */
  wireBytesIn: number;
  wireBytesOut: number;
  /** Messages not delivered to a subscriber: its queue was full, or the packet exceeded its Maximum Packet Size. */
  dropped: number;
  /** Of `dropped`: messages dropped because their owner's queued bytes were at maxQueuedBytesPerOwner. */
  droppedOwnerQuota: number;
  /** CONNECTs refused because their owner had maxSessionsPerOwner sessions already. */
  sessionsRefused: number;
  /** Messages whose Message Expiry Interval passed while they waited in a queue. */
  expired: number;
  /** Retained messages refused (or, where the protocol cannot refuse, not retained) past a retained quota. */
  retainedRefused: number;
  /** Gauge: QoS 1/2 messages sent to clients and not yet acknowledged. */
  inflight: number;
  /** Gauge: messages waiting in session queues. */
  queued: number;
}

export class BrokerStats implements StatsSnapshot {
  connections = 0;
  connectionsTotal = 0;
  messagesIn: [number, number, number] = [0, 0, 0];
  messagesOut: [number, number, number] = [0, 0, 0];
  bytesIn: [number, number, number] = [0, 0, 0];
  bytesOut: [number, number, number] = [0, 0, 0];
  wireBytesIn = 0;
  wireBytesOut = 0;
  dropped = 0;
  droppedOwnerQuota = 0;
  sessionsRefused = 0;
  expired = 0;
  retainedRefused = 0;
  inflight = 0;
  queued = 0;

  snapshot(): StatsSnapshot {
    return {
      connections: this.connections,
      connectionsTotal: this.connectionsTotal,
      messagesIn: [...this.messagesIn],
      messagesOut: [...this.messagesOut],
      bytesIn: [...this.bytesIn],
      bytesOut: [...this.bytesOut],
      wireBytesIn: this.wireBytesIn,
      wireBytesOut: this.wireBytesOut,
      dropped: this.dropped,
      droppedOwnerQuota: this.droppedOwnerQuota,
      sessionsRefused: this.sessionsRefused,
      expired: this.expired,
      retainedRefused: this.retainedRefused,
      inflight: this.inflight,
      queued: this.queued,
    };
  }
}
