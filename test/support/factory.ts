// Helpers for the factory-provisioning tests: factory keys from the real CLI, the bundled agent's
// `provision` subcommand and the agent started from a credentials folder, each as its own process.
import { execFile, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { AGENT_BUNDLE, CLI, Proc, cli } from './procs.js';

const ROOT = resolve(import.meta.dirname, '../..');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end, whatever its exit code. */
export function runToEnd(args: string[], env: NodeJS.ProcessEnv = {}, input?: string): Promise<Run> {
  return new Promise((done) => {
    const child = execFile(process.execPath, args, { cwd: ROOT, env: { ...process.env, CLOUDREST_CONFIG: '', ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      done({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** `cloudrest <args>` to its end (exit code and output, not an exception on failure). */
export const cloudrest = (args: string[], env?: NodeJS.ProcessEnv, input?: string): Promise<Run> => runToEnd([CLI, ...args], env, input);

export async function addFactoryKey(data: string, name = 'Line 1'): Promise<{ id: string; key: string }> {
  return JSON.parse(await cli(['factory-keys', 'add', '--data', data, '--name', name, '--json'])) as { id: string; key: string };
}

/**
 * `node dist/cloudrest-agent.mjs provision ...` (the single file shipped to devices). The key goes in
 * CLOUDREST_FACTORY_KEY, as the docs advise.
 */
export function provision(opts: { factory: string; key: string; idFile: string; out: string; extra?: string[] }): Promise<Run> {
  return runToEnd([AGENT_BUNDLE, 'provision', '--factory', opts.factory, '--id-file', opts.idFile, '--out', opts.out, ...(opts.extra ?? [])], { CLOUDREST_FACTORY_KEY: opts.key });
}

/** The bundled agent started from a credentials folder; waits for it to connect unless told not to. */
export async function startAgentFrom(credentials: string, api: string, opts: { extra?: string[]; waitConnected?: boolean } = {}): Promise<Proc> {
  const args = [AGENT_BUNDLE, '--credentials', credentials, '--api', api, '--backoff-min-ms', '50', '--backoff-max-ms', '300', ...(opts.extra ?? [])];
  const p = new Proc(spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CLOUDREST_CONFIG: '' } }), 'agent');
  if (opts.waitConnected !== false) await p.waitForLog('connected');
  return p;
}
