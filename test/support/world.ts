import { addDevice, addUser, login, startAgent, startDevice, startHub, tempDir, type HubProc, type Proc } from './procs.js';

/** A hub with one user, one device (REST service + agent) connected, ready for relayed requests. */
export interface World {
  data: { path: string; remove(): void };
  hub: HubProc;
  device: Proc & { port: number; url: string };
  agent: Proc;
  deviceId: string;
  secret: string;
  email: string;
  password: string;
  token: string;
  api: string;
  auth: { authorization: string };
  stop(): Promise<void>;
}

export async function startWorld(opts: { hubArgs?: string[]; agentArgs?: string[]; transport?: 'tcp' | 'ws' } = {}): Promise<World> {
  const data = tempDir();
  const email = 'owner@example.com';
  const password = 'correct horse battery';
  await addUser(data.path, email, password);
  // Added with its owner (the trusted path): the device's own report would only ask her (issue 12).
  const { id, secret } = await addDevice(data.path, 'Test device', email);
  const hub = await startHub(data.path, opts.hubArgs);
  const device = await startDevice(email);
  const hubUrl = opts.transport === 'ws' ? `ws://127.0.0.1:${hub.httpPort}` : `tcp://127.0.0.1:${hub.tunnelPort}`;
  const agent = await startAgent({ hub: hubUrl, deviceId: id, secret, api: device.url, extra: opts.agentArgs });
  const token = await login(hub.url, email, password);
  const world: World = {
    data, hub, device, agent, deviceId: id, secret, email, password, token,
    api: `${hub.url}/v1/devices/${id}/api`,
    auth: { authorization: `Bearer ${token}` },
    // Tests may replace the hub or agent (restarts); stop whatever is current.
    async stop() {
      await Promise.all([world.agent.stop(), world.device.stop()]);
      await world.hub.stop();
      data.remove();
    },
  };
  return world;
}
