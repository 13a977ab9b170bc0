/**
 * The one table of `cloudrest` commands. Every command is registered here with its line for
 * `cloudrest --help` (generated from this table, so a command cannot be missing there), its own
 * `--help` text and what it runs. A name is one word (`hub`) or a group and a subcommand (`users add`).
 */
import { agentHelp, provisionHelp, runAgentCli, runProvisionCli } from '../agent/main.js';
import { adminHelp, devicesAdd, devicesList, UsageError, usersAdd, usersList } from './admin.js';
import { devicesImport, devicesImportHelp } from './devices-import.js';
import { devicesRevoke, devicesRevokeHelp, devicesUnrevoke } from './devices-revoke.js';
import { discoverHelp, runDiscover } from './discover.js';
import { factoryKeysAdd, factoryKeysHelp, factoryKeysList, factoryKeysRevoke, factoryKeysRotate } from './factory-keys.js';
import { hubHelp, runHub } from './hub.js';
import { migrateHelp, runMigrate } from './migrate.js';
import { oauthClientsAdd, oauthClientsHelp, oauthClientsList, oauthClientsRemove } from './oauth-clients.js';

export type Out = (s: string) => void;

export interface Command {
  /** Its line in `cloudrest --help`. Neighbours of one group with the same line share it (`users add|list`). */
  summary: string;
  /** The text of `cloudrest NAME --help`. */
  help(): string;
  run(argv: string[], out: Out): Promise<void>;
}

const MANAGE_USERS = 'manage users';
const MANAGE_DEVICES = 'manage devices (add prints the id and secret)';
const REVOKE_DEVICES = 'refuse a device from now on (a running hub closes its tunnel at once)';
const FACTORY_KEYS = 'keys factories use to provision devices';
const OAUTH_CLIENTS = 'manage third-party services that may ask users for access (OAuth 2.0)';

/** In the order `cloudrest --help` lists them. */
export const COMMANDS: ReadonlyMap<string, Command> = new Map<string, Command>([
  ['hub', { summary: 'run the hub (HTTP API, relay, agent tunnel)', help: hubHelp, run: runHub }],
  ['agent', { summary: "run the device agent (connects a device's REST API to a hub)", help: agentHelp, run: runAgentCli }],
  ['agent provision', { summary: "register this device through the hub's factory API, write its credentials", help: provisionHelp, run: runProvisionCli }],
  ['discover', { summary: 'find devices on the LAN (UDP broadcast and mDNS)', help: discoverHelp, run: runDiscover }],
  ['users add', { summary: MANAGE_USERS, help: adminHelp['users add'], run: usersAdd }],
  ['users list', { summary: MANAGE_USERS, help: adminHelp['users list'], run: usersList }],
  ['devices add', { summary: MANAGE_DEVICES, help: adminHelp['devices add'], run: devicesAdd }],
  ['devices list', { summary: MANAGE_DEVICES, help: adminHelp['devices list'], run: devicesList }],
  ['devices import', { summary: 'add devices from a CSV file, all or none (prints ids and secrets)', help: devicesImportHelp, run: devicesImport }],
  ['devices revoke', { summary: REVOKE_DEVICES, help: devicesRevokeHelp.revoke, run: devicesRevoke }],
  ['devices unrevoke', { summary: REVOKE_DEVICES, help: devicesRevokeHelp.unrevoke, run: devicesUnrevoke }],
  ['factory-keys add', { summary: FACTORY_KEYS, help: factoryKeysHelp.add, run: factoryKeysAdd }],
  ['factory-keys list', { summary: FACTORY_KEYS, help: factoryKeysHelp.list, run: factoryKeysList }],
  ['factory-keys revoke', { summary: FACTORY_KEYS, help: factoryKeysHelp.revoke, run: factoryKeysRevoke }],
  ['factory-keys rotate', { summary: FACTORY_KEYS, help: factoryKeysHelp.rotate, run: factoryKeysRotate }],
  ['oauth-clients add', { summary: OAUTH_CLIENTS, help: oauthClientsHelp.add, run: oauthClientsAdd }],
  ['oauth-clients list', { summary: OAUTH_CLIENTS, help: oauthClientsHelp.list, run: oauthClientsList }],
  ['oauth-clients remove', { summary: OAUTH_CLIENTS, help: oauthClientsHelp.remove, run: oauthClientsRemove }],
  ['migrate', { summary: 'copy a hub\'s SQLite state (--data) into PostgreSQL, for --store postgres://...', help: migrateHelp, run: runMigrate }],
]);

const SUMMARY_COLUMN = 22;

/** `cloudrest --help`, made from `table`. */
export function usageText(table: ReadonlyMap<string, Command> = COMMANDS): string {
  // Neighbours with the same group and summary become one line: `users add|list`.
  const lines: Array<{ group: string; subs: string[]; summary: string }> = [];
  for (const [name, c] of table) {
    const [group = name, sub] = name.split(' ') as [string, string?];
    const last = lines.at(-1);
    if (sub !== undefined && last !== undefined && last.group === group && last.subs.length > 0 && last.summary === c.summary) last.subs.push(sub);
    else lines.push({ group, subs: sub === undefined ? [] : [sub], summary: c.summary });
  }
  const rows = lines.map(({ group, subs, summary }) => {
    const left = `  ${subs.length === 0 ? group : `${group} ${subs.join('|')}`}`;
    // A name too long for the column puts its summary on the next line.
    return left.length < SUMMARY_COLUMN ? `${left.padEnd(SUMMARY_COLUMN)}${summary}` : `${left}\n${' '.repeat(SUMMARY_COLUMN)}${summary}`;
  });
  return ['cloudrest: open IoT connectivity hub', '', 'Usage: cloudrest <command> [options]   (--help on any command)', '', 'Commands:', ...rows, ''].join('\n');
}

/** The command `argv` names (a two-word name first) and its own arguments; a UsageError when none. */
export function findCommand(argv: readonly string[], table: ReadonlyMap<string, Command> = COMMANDS): { name: string; command: Command; args: string[] } {
  const [first = '', second] = argv;
  const two = second === undefined ? undefined : `${first} ${second}`;
  const pair = two === undefined ? undefined : table.get(two);
  if (pair) return { name: two!, command: pair, args: argv.slice(2) };
  const one = table.get(first);
  if (one) return { name: first, command: one, args: argv.slice(1) };
  const isGroup = [...table.keys()].some((k) => k.startsWith(`${first} `));
  throw new UsageError(`unknown command: ${isGroup ? `cloudrest ${first} ${second ?? ''}` : first}\n\n${usageText(table)}`);
}

/** Runs `cloudrest ARGV`: the usage without a command, a command's help with --help, else the command. */
export async function runCli(argv: readonly string[], out: Out): Promise<void> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === 'help') return out(usageText());
  // `cloudrest devices --help`: the group's own commands.
  if (argv[1] === '--help' && !COMMANDS.has(argv[0]!)) {
    const group = new Map([...COMMANDS].filter(([name]) => name.startsWith(`${argv[0]!} `)));
    if (group.size > 0) return out(usageText(group));
  }
  const { command, args } = findCommand(argv);
  if (args.includes('--help')) return out(command.help());
  return command.run(args, out);
}
