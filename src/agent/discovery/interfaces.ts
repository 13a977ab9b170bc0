import { isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';

/** One IPv4 address of this machine, with its interface's MAC address. */
export interface LocalAddress {
  address: string;
  mac: string;
  internal: boolean;
}

function toInt(ip: string): number {
  return ip.split('.').reduce((n, o) => ((n << 8) | Number(o)) >>> 0, 0);
}

function ipv4Addresses(): Array<LocalAddress & { netmask: string }> {
  const out: Array<LocalAddress & { netmask: string }> = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4') out.push({ address: a.address, netmask: a.netmask, mac: a.mac, internal: a.internal });
  }
  return out;
}

/**
 * The address of this machine on the same subnet as `peer`: what a LAN client there can reach.
 * Undefined when `peer` is on no directly connected subnet, so answers never go beyond the LAN.
 */
export function addressFacing(peer: string): LocalAddress | undefined {
  if (!isIPv4(peer)) return undefined;
  const p = toInt(peer);
  for (const a of ipv4Addresses()) {
    const mask = toInt(a.netmask);
    if ((toInt(a.address) & mask) === (p & mask)) return { address: a.address, mac: a.mac, internal: a.internal };
  }
  return undefined;
}

/** The addresses mDNS announces: the given interface's, else every non-loopback IPv4 address (loopback if none). */
export function advertisedAddresses(only?: string): LocalAddress[] {
  const all = ipv4Addresses();
  if (only) return all.filter((a) => a.address === only);
  const external = all.filter((a) => !a.internal);
  return external.length > 0 ? external : all;
}
