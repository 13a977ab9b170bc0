import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { AGENT_BUNDLE, CLI, Proc, tempDir } from './support/procs.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');

// A LAN of two machines, made of two network namespaces joined by a veth pair: the device (agent and
// REST service) on 198.51.100.1, a client on 198.51.100.2 (TEST-NET-2, RFC 5737). Broadcasts and mDNS
// multicast stay on this private link; nothing reaches the host's network. Needs root (CI runs as root).
const NS_DEVICE = `crd${process.pid}a`;
const NS_CLIENT = `crd${process.pid}b`;
const IF_DEVICE = `crd${process.pid}a0`;
const IF_CLIENT = `crd${process.pid}b0`;
const DEVICE_IP = '198.51.100.1';
const BROADCAST = '198.51.100.255';
const LAN_PORT = 8081;
const DEVICE_ID = 'd_lanthermostat1';

async function ip(...args: string[]): Promise<string> {
  return (await run('ip', args)).stdout;
}

/** Runs a command in the client's namespace. */
async function inClient(cmd: string, args: string[], timeoutMs = 20_000): Promise<string> {
  return (await run('ip', ['netns', 'exec', NS_CLIENT, cmd, ...args], { cwd: ROOT, timeout: timeoutMs })).stdout;
}

interface Datagram { from: string; port: number; text: string; hex: string }

/** Sends datagrams from the client's namespace and returns what came back to `listenPort`. */
async function probe(sends: Array<{ hex: string; count?: number }>, opts: { to?: string; port?: number; listenPort?: number; waitMs?: number } = {}): Promise<Datagram[]> {
  const plan = { to: opts.to ?? BROADCAST, port: opts.port ?? 15800, listenPort: opts.listenPort ?? 15900, waitMs: opts.waitMs ?? 1200, sends };
  const out = await inClient(process.execPath, ['--import', 'tsx', join(ROOT, 'test/fixtures/udp-probe.ts'), JSON.stringify(plan)]);
  return (JSON.parse(out) as { received: Datagram[] }).received;
}

const hex = (s: string): string => Buffer.from(s).toString('hex');
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('LAN discovery: UDP broadcast (seed 002) and mDNS / DNS-SD, on a LAN of two network namespaces', () => {
  const state = tempDir('cloudrest-agent-state-');
  let device: Proc;
  let agent: Proc;
  let mac: string;

  before(async () => {
    await ip('netns', 'add', NS_DEVICE);
    await ip('netns', 'add', NS_CLIENT);
    await ip('link', 'add', IF_DEVICE, 'type', 'veth', 'peer', 'name', IF_CLIENT);
    for (const [ns, dev, addr] of [[NS_DEVICE, IF_DEVICE, `${DEVICE_IP}/24`], [NS_CLIENT, IF_CLIENT, '198.51.100.2/24']] as const) {
      await ip('link', 'set', dev, 'netns', ns);
      await ip('-n', ns, 'addr', 'add', addr, 'broadcast', BROADCAST, 'dev', dev);
      await ip('-n', ns, 'link', 'set', dev, 'up');
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      // mDNS multicast (224.0.0.251) goes out on the link.
      await ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', dev);
    }
    mac = (await run('ip', ['netns', 'exec', NS_DEVICE, 'cat', `/sys/class/net/${IF_DEVICE}/address`])).stdout.trim();

    device = new Proc(spawn('ip', ['netns', 'exec', NS_DEVICE, process.execPath, '--import', 'tsx', join(ROOT, 'test/fixtures/device.ts'), 'owner@example.com'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }), 'device');
    const port = (JSON.parse(await device.waitFor((l) => l.startsWith('{"port"'))) as { port: number }).port;
    // No hub on this LAN (the hub address does not answer): discovery and the LAN port work without one.
    agent = new Proc(spawn('ip', ['netns', 'exec', NS_DEVICE, process.execPath, AGENT_BUNDLE,
      '--hub', 'tcp://198.51.100.99:7443', '--device-id', DEVICE_ID, '--secret', 'not-needed-here', '--api', `http://127.0.0.1:${port}`,
      '--lan-port', String(LAN_PORT), '--state-dir', state.path, '--discovery', '--backoff-max-ms', '1000'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }), 'agent');
    await agent.waitForLog('agent starting');
  });

  after(async () => {
    await Promise.all([agent?.stop(), device?.stop()]);
    await ip('netns', 'del', NS_DEVICE).catch(() => undefined);
    await ip('netns', 'del', NS_CLIENT).catch(() => undefined);
    state.remove();
  });

  it('answers a broadcast to port 15800 with "CloudREST || <MAC> || <name> || <REST API URL>" sent to port 15900', async () => {
    let answers: Datagram[] = [];
    // The first answers may name the device by id, until the agent has read GET /device.
    for (let i = 0; i < 10 && !answers.some((a) => a.text.includes('Demo thermostat')); i++) {
      if (i > 0) await pause(1100);
      answers = await probe([{ hex: hex('hello') }]);
    }
    assert.equal(answers.length, 1, JSON.stringify(answers));
    const a = answers[0]!;
    assert.equal(a.from, DEVICE_IP);
    assert.equal(a.port, 15800, 'sent from the discovery port');
    assert.equal(a.text, `CloudREST || ${mac} || Demo thermostat || http://${DEVICE_IP}:${LAN_PORT}`);
    assert.equal(a.hex, hex(a.text), 'plain text, nothing more');
  });

  it('ignores oversized, binary and forged datagrams, and answers one asker at most once a second', async () => {
    await pause(1100);
    const junk = await probe([
      { hex: hex('x'.repeat(1000)) },
      { hex: '00ff00ff10' },
      { hex: hex('CloudREST || 00:11:22:33:44:55 || Evil || http://203.0.113.9/') },
    ], { waitMs: 1500 });
    assert.deepEqual(junk, [], 'no answer to junk or to a forged answer');
    await pause(1100);
    const burst = await probe([{ hex: hex('hello'), count: 25 }], { waitMs: 800 });
    assert.equal(burst.length, 1, `25 queries in a burst got ${burst.length} answers`);
    await pause(1100);
    const after = await probe([{ hex: hex('hello') }]);
    assert.equal(after.length, 1, 'still answering after the junk');
    assert.match(after[0]!.text, /^CloudREST \|\| /);
    assert.equal(agent.child.exitCode, null);
  });

  it('advertises _cloudrest._tcp over mDNS: dig resolves its PTR, SRV, TXT (id, name, api) and A records', async () => {
    // A one-shot (legacy) query to the mDNS port, answered by unicast (RFC 6762 §6.7).
    const out = await inClient('dig', ['-p', '5353', `@${DEVICE_IP}`, '_cloudrest._tcp.local', 'PTR', '+time=2', '+tries=3']);
    assert.match(out, /status: NOERROR/);
    const instance = /_cloudrest\._tcp\.local\.\s+\d+\s+IN\s+PTR\s+(\S+)/.exec(out)?.[1];
    assert.ok(instance, out);
    assert.match(instance, /^Demo\\032thermostat\\032\\\(d_lanthermostat1\\\)\._cloudrest\._tcp\.local\.$/);
    assert.match(out, new RegExp(`IN\\s+SRV\\s+0 0 ${LAN_PORT} (cloudrest-d-lanthermostat1\\.local\\.)`));
    assert.match(out, new RegExp(`IN\\s+TXT\\s+"id=${DEVICE_ID}" "name=Demo thermostat" "api=http://${DEVICE_IP.replace(/\./g, '\\.')}:${LAN_PORT}"`));
    assert.match(out, new RegExp(`cloudrest-d-lanthermostat1\\.local\\.\\s+\\d+\\s+IN\\s+A\\s+${DEVICE_IP.replace(/\./g, '\\.')}`));
    const a = await inClient('dig', ['-p', '5353', `@${DEVICE_IP}`, 'cloudrest-d-lanthermostat1.local', 'A', '+short', '+time=2', '+tries=3']);
    assert.equal(a.trim(), DEVICE_IP);
  });

  it('is found and resolved by avahi-browse (Avahi, the Linux mDNS stack) on the client machine', async () => {
    // Avahi as on a desktop: its daemon on a private D-Bus, in the client's namespace, on the link.
    const dir = tempDir('cloudrest-avahi-');
    const bus = join(dir.path, 'bus');
    writeFileSync(join(dir.path, 'bus.conf'), `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=${bus}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*" eavesdrop="true"/><allow receive_sender="*"/></policy></busconfig>
`);
    writeFileSync(join(dir.path, 'avahi.conf'), `[server]\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces=${IF_CLIENT}\nenable-dbus=yes\n[publish]\ndisable-publishing=yes\n`);
    const env = { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${bus}` };
    const dbus = new Proc(spawn('ip', ['netns', 'exec', NS_CLIENT, 'dbus-daemon', `--config-file=${join(dir.path, 'bus.conf')}`, '--nofork', '--print-address'], { stdio: ['ignore', 'pipe', 'pipe'] }), 'dbus');
    let avahi: Proc | undefined;
    try {
      await dbus.waitFor((l) => l.includes(bus));
      // `ip netns exec` gives the command its own mount namespace: Avahi's pid file goes on a private tmpfs.
      avahi = new Proc(spawn('ip', ['netns', 'exec', NS_CLIENT, 'sh', '-c',
        `mkdir -p /run/avahi-daemon && mount -t tmpfs tmpfs /run/avahi-daemon && exec avahi-daemon -f ${join(dir.path, 'avahi.conf')} --no-chroot --no-drop-root --no-rlimits`],
      { stdio: ['ignore', 'pipe', 'pipe'], env }), 'avahi');
      await avahi.waitFor((l) => l.includes('Server startup complete'));
      let resolved: string[] = [];
      for (let i = 0; i < 5 && resolved.length === 0; i++) {
        const out = (await run('ip', ['netns', 'exec', NS_CLIENT, 'avahi-browse', '--resolve', '--parsable', '--terminate', '_cloudrest._tcp'], { env, timeout: 20_000 })).stdout;
        resolved = out.split('\n').filter((l) => l.startsWith('='));
      }
      assert.equal(resolved.length, 1, resolved.join('\n'));
      const [, iface, proto, name, type, domain, host, address, port, txt] = resolved[0]!.split(';');
      assert.deepEqual([iface, proto, name, type, domain, host, address, port], [IF_CLIENT, 'IPv4', 'Demo\\032thermostat\\032\\040d_lanthermostat1\\041', '_cloudrest._tcp', 'local', 'cloudrest-d-lanthermostat1.local', DEVICE_IP, String(LAN_PORT)]);
      assert.match(txt!, new RegExp(`"id=${DEVICE_ID}"`));
      assert.match(txt!, /"name=Demo thermostat"/);
      assert.match(txt!, new RegExp(`"api=http://${DEVICE_IP.replace(/\./g, '\\.')}:${LAN_PORT}"`));
    } finally {
      await avahi?.stop();
      await dbus.stop();
      dir.remove();
    }
  });

  it('cloudrest discover finds the device by both methods and merges them, as a table and as JSON', async () => {
    await pause(1100);
    const json = await inClient(process.execPath, [CLI, 'discover', '--broadcast-address', BROADCAST, '--timeout', '2', '--json']);
    const found = JSON.parse(json) as Array<{ url: string; name: string; id: string; mac: string; address: string; methods: string[] }>;
    assert.equal(found.length, 1, json);
    const d = found[0]!;
    assert.deepEqual({ ...d, methods: [...d.methods].sort() }, { url: `http://${DEVICE_IP}:${LAN_PORT}`, name: 'Demo thermostat', id: DEVICE_ID, mac, address: DEVICE_IP, methods: ['mdns', 'udp'] });
    await pause(1100);
    const table = await inClient(process.execPath, [CLI, 'discover', '--broadcast-address', BROADCAST, '--timeout', '2']);
    const lines = table.trim().split('\n');
    assert.match(lines[0]!, /^NAME\s+ID\s+URL\s+MAC\s+FOUND BY$/);
    assert.match(lines[1]!, new RegExp(`^Demo thermostat\\s+${DEVICE_ID}\\s+http://${DEVICE_IP.replace(/\./g, '\\.')}:${LAN_PORT}\\s+${mac}\\s+(udp\\+mdns|mdns\\+udp)$`));
    const onlyUdp = JSON.parse(await inClient(process.execPath, [CLI, 'discover', '--broadcast-address', BROADCAST, '--timeout', '1', '--no-mdns', '--json'])) as Array<{ methods: string[]; id: string | null }>;
    assert.deepEqual(onlyUdp.map((x) => [x.methods, x.id]), [[['udp'], null]], 'the UDP answer carries no id');
  });
});
