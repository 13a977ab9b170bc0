import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from './admin.js';
import { COMMANDS, findCommand, runCli, usageText, type Command } from './commands.js';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The usage line that lists `name` (`users add` is on `  users add|list ...`), or undefined. */
function usageLine(usage: string, name: string): string | undefined {
  const [group = '', sub] = name.split(' ');
  const re = sub === undefined
    ? new RegExp(`^  ${escape(group)} {2,}\\S`)
    : new RegExp(`^  ${escape(group)} ([a-z-]+\\|)*${escape(sub)}(\\|[a-z-]+)*( |$)`);
  return usage.split('\n').find((line) => re.test(line));
}

describe('cloudrest commands', () => {
  it('cloudrest --help lists every command there is', () => {
    const usage = usageText();
    for (const name of COMMANDS.keys()) assert.ok(usageLine(usage, name), `${name} is missing from:\n${usage}`);
  });

  it('a newly registered command appears in cloudrest --help without anything else to edit', () => {
    const widget: Command = { summary: 'frobnicate widgets', help: () => 'Usage: cloudrest widgets frob', run: async () => {} };
    const usage = usageText(new Map([...COMMANDS, ['widgets frob', widget]]));
    assert.match(usageLine(usage, 'widgets frob') ?? '', /widgets frob\s+frobnicate widgets/);
    assert.equal(usageLine(usageText(), 'widgets frob'), undefined);
  });

  it('lists the subcommands of a group that share a summary on one line', () => {
    const usage = usageText();
    assert.match(usage, /^ {2}users add\|list {6}manage users$/m);
    assert.match(usage, /^ {2}factory-keys add\|list\|revoke\|rotate$/m);
    assert.match(usage, /^ {2}agent {15}run the device agent/m);
    assert.match(usage, /^ {2}agent provision {5}register this device/m);
  });

  it("every command's --help starts with its own usage line", () => {
    for (const [name, c] of COMMANDS) assert.ok(c.help().startsWith(`Usage: cloudrest ${name}`), `${name}: ${c.help().split('\n')[0]!}`);
  });

  it('cloudrest devices --help lists the devices commands and no others', async () => {
    const printed: string[] = [];
    await runCli(['devices', '--help'], (text) => printed.push(text));
    const text = printed.join('');
    for (const name of COMMANDS.keys()) {
      if (name.startsWith('devices ')) assert.ok(text.includes(name.split(' ')[1]!), `${name} listed`);
    }
    assert.match(text, /devices add\|list/);
    assert.doesNotMatch(text, /oauth-clients|factory-keys|\n {2}hub /);
  });

  it('finds a two-word command before a one-word one and passes on the rest', () => {
    const provision = findCommand(['agent', 'provision', '--out', 'x']);
    assert.equal(provision.name, 'agent provision');
    assert.deepEqual(provision.args, ['--out', 'x']);
    const agent = findCommand(['agent', '--hub', 'tcp://h']);
    assert.equal(agent.name, 'agent');
    assert.deepEqual(agent.args, ['--hub', 'tcp://h']);
    assert.equal(findCommand(['users', 'add', '--email', 'a@b']).command, COMMANDS.get('users add'));
  });

  it('an unknown subcommand of a group and an unknown command are usage errors with the command list', () => {
    assert.throws(() => findCommand(['oauth-clients', 'rename']), (e: unknown) => e instanceof UsageError && e.message.startsWith('unknown command: cloudrest oauth-clients rename\n') && e.message.includes('Commands:'));
    assert.throws(() => findCommand(['users']), (e: unknown) => e instanceof UsageError && e.message.startsWith('unknown command: cloudrest users \n'));
    assert.throws(() => findCommand(['frobnicate']), (e: unknown) => e instanceof UsageError && e.message.startsWith('unknown command: frobnicate\n') && e.message.includes('Commands:'));
  });
});
