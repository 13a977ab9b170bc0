/**
 * MQTT over WebSocket on the hub's HTTP port, path `/mqtt` (MQTT 5.0 §6: binary messages, subprotocol
 * `mqtt`; 3.1 clients' `mqttv3.1` accepted too). The websocket becomes a byte Duplex with backpressure
 * (the tunnel's wsDuplex: reads pause the socket when the broker falls behind; a text message closes the
 * connection, [MQTT-6.0.0-1]).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { wsDuplex } from '../../relay/protocol/ws-duplex.js';
import type { Broker } from '../broker.js';
import type { MqttAddressGate } from './address-gate.js';

export const MQTT_WS_PATH = '/mqtt';

const TOO_MANY = 'HTTP/1.1 429 Too Many Requests\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';

export class MqttWebSockets {
  readonly #wss: WebSocketServer;

  constructor(
    private readonly broker: Broker,
    private readonly secure: boolean,
    maxPacketBytes: number,
    private readonly gate: MqttAddressGate,
  ) {
    this.#wss = new WebSocketServer({
      noServer: true,
      // One message may carry a whole packet plus a few more written in the same tick.
      maxPayload: maxPacketBytes + 64 * 1024,
      perMessageDeflate: false,
      handleProtocols: (offered) => (offered.has('mqtt') ? 'mqtt' : offered.has('mqttv3.1') ? 'mqttv3.1' : false),
    });
  }

  /** Takes the upgrade if it is for `/mqtt`; false leaves it to the caller. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    if ((q === -1 ? url : url.slice(0, q)) !== MQTT_WS_PATH || this.broker.closing) return false;
    const remoteAddress = req.socket.remoteAddress ?? '';
    const transport = this.secure ? 'wss' : 'ws';
    // Counted from the upgrade (the HTTP request before it is the HTTP server's to bound).
    if (!this.gate.admit(socket, remoteAddress, transport)) {
      // RFC 6585 §4; the socket closes once the answer is written, whatever the client does.
      socket.once('finish', () => socket.destroy());
      socket.end(TOO_MANY);
      return true;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      this.broker.handle(wsDuplex(ws), { remoteAddress, transport });
    });
    return true;
  }

  /** Cuts what the broker's close left open. */
  terminateAll(): void {
    for (const ws of this.#wss.clients) ws.terminate();
  }
}
