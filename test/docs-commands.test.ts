/**
 * The `cloudrest ...` command lines that README.md, docs/ and deploy/ show a user: each names a command
 * that exists, and every flag it passes is one that command's --help lists. A user copies these lines;
 * a renamed flag must not leave them behind.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'bin/cloudrest.js');
const run = promisify(execFile);

/** Commands and the subcommands `cloudrest --help` lists for them. */
const COMMANDS: Record<string, readonly string[]> = {
  hub: [],
  agent: ['provision'],
  discover: [],
  users: ['add', 'list'],
  devices: ['add', 'list', 'import', 'revoke', 'unrevoke'],
  'factory-keys': ['add', 'list', 'revoke', 'rotate'],
  'oauth-clients': ['add', 'list', 'remove'],
  migrate: [],
};

interface Usage {
  file: string;
  line: string;
  command: string[];
  flags: string[];
}

function filesUnder(dir: string, keep: (name: string) => boolean): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return filesUnder(path, keep);
    return keep(name) ? [path] : [];
  });
}

/** The text a user would copy: fenced code blocks and `inline code` in markdown, every line elsewhere. */
function copyable(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  if (!path.endsWith('.md')) return text.split('\n');
  const out: string[] = [];
  let fenced = false;
  for (const line of text.split('\n')) {
    if (line.trimStart().startsWith('```')) {
      fenced = !fenced;
      continue;
    }
    if (fenced) out.push(line);
    else for (const m of line.matchAll(/`([^`]+)`/g)) out.push(m[1]!);
  }
  return out;
}

/** Each `cloudrest <command>` in a line, up to the end of that shell command. */
function usages(file: string, line: string): Usage[] {
  const found: Usage[] = [];
  const words = line.split(/\s+/).filter((w) => w !== '');
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w !== 'cloudrest' && !w.endsWith('bin/cloudrest.js')) continue;
    const name = words[i + 1];
    if (name === undefined || !(name in COMMANDS)) continue;
    const command = [name];
    // `revoke|unrevoke` (escaped `\|` in a table) names two subcommands: the first one is checked.
    const sub = words[i + 2]?.split(/\\?\|/)[0];
    if (sub !== undefined && COMMANDS[name]!.includes(sub)) command.push(sub);
    const flags: string[] = [];
    for (const t of words.slice(i + 1 + command.length)) {
      if (/^(\||&&?|;|#|\))/.test(t)) break;
      const m = /^\[?(--[a-z0-9][a-z0-9-]*)/.exec(t);
      if (m) flags.push(m[1]!);
    }
    found.push({ file, line: line.trim(), command, flags });
  }
  return found;
}

test('every cloudrest command line in README.md, docs/ and deploy/ uses a command and flags that exist', async () => {
  const files = [join(ROOT, 'README.md'), ...filesUnder(join(ROOT, 'docs'), (n) => n.endsWith('.md')), ...filesUnder(join(ROOT, 'deploy'), () => true)];
  const all = files.flatMap((f) => copyable(f).flatMap((line) => usages(relative(ROOT, f), line)));
  assert.ok(all.length >= 30, `found only ${all.length} command lines: the scan itself is broken`);
  const helps = new Map<string, Promise<string>>();
  const help = (command: string[]): Promise<string> => {
    const key = command.join(' ');
    let h = helps.get(key);
    if (h === undefined) {
      h = run(process.execPath, [CLI, ...command, '--help'], { encoding: 'utf8' }).then((r) => r.stdout + r.stderr);
      helps.set(key, h);
    }
    return h;
  };
  const wrong: string[] = [];
  for (const u of all) {
    const text = await help(u.command).catch((err: unknown) => {
      wrong.push(`${u.file}: \`${u.line}\`: cloudrest ${u.command.join(' ')} --help failed (${String(err)})`);
      return undefined;
    });
    if (text === undefined) continue;
    for (const flag of u.flags) {
      if (!new RegExp(`(^|[\\s\\[])${flag}(?![a-z0-9-])`, 'm').test(text)) wrong.push(`${u.file}: \`${u.line}\`: cloudrest ${u.command.join(' ')} has no ${flag}`);
    }
  }
  assert.deepEqual(wrong, []);
});
