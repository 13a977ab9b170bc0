/**
 * Fixture for the protocol tests: two real TunnelSessions, 'hub' and 'agent', on the two ends of a
 * loopback TCP connection, handshake done.
 */
import { once } from 'node:events';
import net from 'node:net';
import type { TestContext } from 'node:test';
import { PROTOCOL_VERSION } from './frames.js';
import { TunnelSession, type Hello, type Welcome } from './session.js';

export interface Limits {
  hubWindowBytes?: number;
  agentWindowBytes?: number;
  hubMaxFrameBytes?: number;
  agentMaxFrameBytes?: number;
}

export interface Tunnel {
  hub: TunnelSession;
  agent: TunnelSession;
  hubSocket: net.Socket;
  agentSocket: net.Socket;
  hello: Hello;
  welcome: Welcome;
}

export async function socketPair(t: TestContext): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection');
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const [[hubSide]] = (await Promise.all([accepted, once(client, 'connect')])) as [[net.Socket], unknown];
  server.close();
  t.after(() => {
    hubSide.destroy();
    client.destroy();
  });
  return [hubSide, client];
}

/** Opens a tunnel and runs the handshake: HELLO from the agent, WELCOME from the hub. */
export async function openTunnel(t: TestContext, limits: Limits = {}): Promise<Tunnel> {
  const [hubSocket, agentSocket] = await socketPair(t);
  const hubOpts = { maxFrameBytes: limits.hubMaxFrameBytes ?? 65_536, windowBytes: limits.hubWindowBytes ?? 262_144 };
  const agentOpts = { maxFrameBytes: limits.agentMaxFrameBytes ?? 65_536, windowBytes: limits.agentWindowBytes ?? 262_144 };
  const hub = new TunnelSession(hubSocket, 'hub', hubOpts);
  const agent = new TunnelSession(agentSocket, 'agent', agentOpts);
  const hello: Hello = {
    version: PROTOCOL_VERSION, deviceId: 'dev-1', secret: 's3cret', bootId: 'boot-a', info: { model: 'test' },
    maxStreams: 64, ...agentOpts,
  };
  const welcome: Welcome = { version: PROTOCOL_VERSION, pingIntervalMs: 20_000, idleTimeoutMs: 60_000, ...hubOpts };
  hub.once('hello', (h: Hello) => hub.sendWelcome(welcome, h));
  const welcomed = once(agent, 'welcome');
  agent.sendHello(hello);
  await welcomed;
  return { hub, agent, hubSocket, agentSocket, hello, welcome };
}

