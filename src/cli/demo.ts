import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Agent } from '../agent/agent.js';
import { agentOptions, resolveAgentConfig } from '../config/agent-options.js';
import { loadConfig } from '../config/load.js';
import { hashPassword, newId, newSecret, sha256Hex } from '../core/secrets.js';
import { startDemoDevice } from '../demo/device-server.js';
import type { Hub } from '../hub.js';

export const DEMO_EMAIL = 'demo@cloudrest.local';
export const DEMO_PASSWORD = 'cloudrest-demo';

interface DemoCredentials {
  id: string;
  secret: string;
}

/** The demo device's credentials, kept in the data folder so restarts reuse the same device. */
async function demoDevice(hub: Hub): Promise<DemoCredentials> {
  const file = join(hub.config.data, 'demo-device.json');
  if (existsSync(file)) {
    const c = JSON.parse(readFileSync(file, 'utf8')) as DemoCredentials;
    if (await hub.store.getDevice(c.id)) return c;
  }
  const c = { id: newId('d_'), secret: newSecret() };
  await hub.store.createDevice({ id: c.id, name: 'Demo thermostat', email: DEMO_EMAIL, secretHash: sha256Hex(c.secret) });
  writeFileSync(file, JSON.stringify(c), { mode: 0o600 });
  return c;
}

/** The MQTT URLs that actually listen, and why a listener is off. */
function mqttLines(hub: Hub): string[] {
  if (!hub.mqtt) return ['  MQTT             off (--no-mqtt)'];
  const shownHost = new URL(hub.httpUrl).hostname;
  const [urls, ...off] = hub.mqtt.describe(shownHost, hub.httpUrl);
  return [`  MQTT             ${urls}  (user ${DEMO_EMAIL}, password = an access token)`, ...off.map((o) => `                   ${o}`)];
}

/**
 * `cloudrest hub --demo` (what `npm start` runs): a demo user, a simulated thermostat with its own REST
 * service on 127.0.0.1, and an agent connecting it to this hub through the real tunnel, so a newcomer
 * sees a device online at once. Prints a banner with a curl line that works as printed.
 */
export async function startDemo(hub: Hub): Promise<{ stop(): Promise<void> }> {
  let user = await hub.store.getUserByEmail(DEMO_EMAIL);
  user ??= await hub.store.createUser({ id: newId('u_'), email: DEMO_EMAIL, passwordHash: await hashPassword(DEMO_PASSWORD) });
  const creds = await demoDevice(hub);
  const device = await startDemoDevice({ info: { email: DEMO_EMAIL } });
  const socketPath = join(hub.config.data, 'demo-notify.sock');
  const { config } = loadConfig(agentOptions, {
    argv: ['--hub', `tcp://127.0.0.1:${hub.tunnelPort}`, `--device-id=${creds.id}`, `--secret=${creds.secret}`, '--api', device.url, '--notify-socket', socketPath, '--log-level', 'warn'],
    env: {},
  });
  const agent = new Agent(resolveAgentConfig(config));
  const connected = new Promise<void>((resolve) => agent.once('connected', () => resolve()));
  await agent.start();
  await Promise.race([connected, new Promise((r) => setTimeout(r, 5000))]);

  // Issued as POST /v1/auth would (signed), so it works on the device's LAN port too.
  const { token } = await hub.auth.issueToken(user, 30 * 24 * 3600_000);

  // The thermostat reports a reading every 10 s through the agent's notification socket.
  const ticker = setInterval(() => {
    const s = connect(socketPath);
    s.on('error', () => s.destroy());
    s.end(`${JSON.stringify({ celsius: Math.round((20 + Math.sin(Date.now() / 60000) * 2) * 10) / 10 })}\n`);
  }, 10_000);
  ticker.unref();

  const base = hub.httpUrl;
  const banner = [
    '',
    '  cloudrest hub is running (demo mode)',
    '',
    `  HTTP API         ${base}            (client API, SSE, metrics)`,
    `  Agent tunnel     ${hub.tunnelUrl}  and  ${base.replace(/^http/, 'ws')}/v1/agent`,
    ...mqttLines(hub),
    `  Data             ${hub.config.data}`,
    `  Demo login       ${DEMO_EMAIL} / ${DEMO_PASSWORD}`,
    `  Demo device      ${creds.id}  (simulated thermostat, online)`,
    '',
    '  Try it:',
    `    curl -H 'Authorization: Bearer ${token}' ${base}/v1/devices/${creds.id}/api/temperature`,
    `    curl -N -H 'Authorization: Bearer ${token}' ${base}/v1/devices/${creds.id}/events`,
    '',
  ].join('\n');
  process.stdout.write(`${banner}\n`);

  return {
    async stop() {
      clearInterval(ticker);
      await agent.stop();
      await device.close();
    },
  };
}
