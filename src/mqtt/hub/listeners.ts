/**
 * The broker's network listeners: MQTT over TCP and over TLS, each handing its sockets to
 * `broker.handle`. (MQTT over WebSocket is on the HTTP port: see ws-upgrade.ts.)
 */
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { PortInUseError } from '../../errors.js';
import type { Broker } from '../broker.js';
import type { MqttAddressGate } from './address-gate.js';

export interface ListenerSpec {
  what: 'MQTT' | 'MQTTS';
  flag: '--mqtt-port' | '--mqtts-port';
  port: number;
  /** Set by the user (flag, file or environment): a taken port is then an error, not a warning. */
  explicit: boolean;
  host: string;
}

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  /** CA of client certificates: one is requested, and if presented must verify. */
  ca?: Buffer;
}

export function mqttTcpServer(broker: Broker, gate: MqttAddressGate): NetServer {
  return createNetServer((s: Socket) => {
    const remoteAddress = s.remoteAddress ?? '';
    if (!gate.admit(s, remoteAddress, 'tcp')) return void s.destroy();
    s.setNoDelay(true);
    broker.handle(s, { remoteAddress, transport: 'tcp' });
  });
}

export function mqttTlsServer(broker: Broker, tls: TlsFiles, gate: MqttAddressGate, log: Logger): NetServer {
  const server = createTlsServer(
    { cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: false } : {}) },
    (s: TLSSocket) => {
      // A client may come without a certificate (it then authenticates with user name and password);
      // one that shows a certificate the CA does not vouch for is turned away.
      if (tls.ca && !s.authorized && Object.keys(s.getPeerCertificate()).length > 0) {
        log.warn({ remoteAddress: s.remoteAddress, reason: String(s.authorizationError) }, 'mqtts connection refused: client certificate not trusted');
        s.destroy();
        return;
      }
      s.setNoDelay(true);
      broker.handle(s, { remoteAddress: s.remoteAddress ?? '', transport: 'tls' });
    },
  );
  // Counted at accept, before the handshake: a handshake is work, and a socket that never finishes one is held too.
  server.on('connection', (s: Socket) => {
    if (!gate.admit(s, s.remoteAddress ?? '', 'tls')) s.destroy();
  });
  server.on('tlsClientError', (err: Error) => log.debug({ err: err.message }, 'mqtts TLS handshake failed'));
  return server;
}

/**
 * Binds `server`. A taken port set by the user is a PortInUseError naming the flag; a taken default port
 * (Mosquitto on 1883, say) is a warning, and resolves undefined: the hub carries on without it.
 */
export function listenMqtt(server: NetServer, spec: ListenerSpec, log: Logger): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EADDRINUSE') return reject(err);
      if (spec.explicit) return reject(new PortInUseError(`${spec.what} port ${spec.port} on ${spec.host} is already in use; choose another with ${spec.flag} (0 picks a free one)`));
      log.warn({ port: spec.port, flag: spec.flag }, `${spec.what} port ${spec.port} is in use by another process; ${spec.what === 'MQTT' ? 'MQTT over TCP' : 'MQTT over TLS'} is off; set ${spec.flag}`);
      resolve(undefined);
    };
    server.once('error', onError);
    server.listen(spec.port, spec.host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
