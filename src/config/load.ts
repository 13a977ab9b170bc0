import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { envName, flagName, type ConfigOf, type OptionSpec, type OptionTable } from './option.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** The value of a URL option (`--api`, `--factory`) if it is an http:// or https:// URL, else a ConfigError. */
export function httpUrlOption(flag: string, value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${flag} ${JSON.stringify(value)}: not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`${flag} ${value}: expected an http:// or https:// URL`);
  return url;
}

type Raw = string | number | boolean | readonly string[];

function coerce(key: string, spec: OptionSpec, value: unknown, source: string): Raw {
  const where = `${source} ${key}`;
  switch (spec.type) {
    case 'int': {
      const n = typeof value === 'number' ? value : typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : NaN;
      if (!Number.isSafeInteger(n)) throw new ConfigError(`${where}: expected an integer, got ${JSON.stringify(value)}`);
      if (spec.min !== undefined && n < spec.min) throw new ConfigError(`${where}: must be >= ${spec.min}, got ${n}`);
      if (spec.max !== undefined && n > spec.max) throw new ConfigError(`${where}: must be <= ${spec.max}, got ${n}`);
      return n;
    }
    case 'bool': {
      if (typeof value === 'boolean') return value;
      if (typeof value === 'string' && /^(1|true|yes|on)$/i.test(value)) return true;
      if (typeof value === 'string' && /^(0|false|no|off)$/i.test(value)) return false;
      throw new ConfigError(`${where}: expected true or false, got ${JSON.stringify(value)}`);
    }
    case 'list': {
      if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return Object.freeze([...value]);
      if (typeof value === 'string') return Object.freeze(value.split(',').map((s) => s.trim()).filter(Boolean));
      throw new ConfigError(`${where}: expected a list of strings`);
    }
    case 'string': {
      if (typeof value !== 'string') throw new ConfigError(`${where}: expected a string`);
      if (spec.choices && !spec.choices.includes(value)) {
        throw new ConfigError(`${where}: must be one of ${spec.choices.join(', ')}, got ${JSON.stringify(value)}`);
      }
      return value;
    }
  }
}

export interface LoadSources {
  argv: readonly string[];
  env?: NodeJS.ProcessEnv;
}

/**
 * Builds a frozen config from, in rising precedence: defaults, the JSON file named by `--config`
 * (or CLOUDREST_CONFIG), CLOUDREST_* variables, and flags. Unknown flags and file keys are errors.
 * Returns the config and the positional arguments.
 */
export function loadConfig<T extends OptionTable>(table: T, sources: LoadSources): { config: ConfigOf<T>; positionals: string[] } {
  const env = sources.env ?? process.env;
  const parseOptions: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = { config: { type: 'string' } };
  for (const [key, spec] of Object.entries(table)) {
    parseOptions[flagName(key)] = { type: spec.type === 'bool' ? 'boolean' : 'string', ...(spec.type === 'list' ? { multiple: true } : {}) };
    if (spec.type === 'bool') parseOptions[`no-${flagName(key)}`] = { type: 'boolean' };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...sources.argv], options: parseOptions, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const values: Record<string, Raw | undefined> = {};
  for (const [key, spec] of Object.entries(table)) values[key] = spec.default;

  const file = (parsed.values.config as string | undefined) ?? env.CLOUDREST_CONFIG;
  if (file) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ConfigError(`config file ${file}: ${(err as Error).message}`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(`config file ${file}: expected a JSON object`);
    for (const [key, value] of Object.entries(json)) {
      const spec = table[key];
      if (!spec) throw new ConfigError(`config file ${file}: unknown key ${JSON.stringify(key)}`);
      values[key] = coerce(key, spec, value, 'config file key');
    }
  }
  for (const [key, spec] of Object.entries(table)) {
    const v = env[envName(key)];
    if (v !== undefined && v !== '') values[key] = coerce(envName(key), spec, v, 'environment variable');
  }
  for (const [key, spec] of Object.entries(table)) {
    const flag = flagName(key);
    const v = parsed.values[flag];
    if (v !== undefined) {
      const value = spec.type === 'list' ? (v as string[]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean) : v;
      values[key] = coerce(`--${flag}`, spec, value, 'flag');
    }
    if (spec.type === 'bool' && parsed.values[`no-${flag}`]) values[key] = false;
  }
  for (const [key, spec] of Object.entries(table)) {
    if (spec.required && values[key] === undefined) {
      throw new ConfigError(`missing required option --${flagName(key)} (or ${envName(key)}, or "${key}" in the config file)`);
    }
  }
  return { config: Object.freeze(values) as ConfigOf<T>, positionals: parsed.positionals };
}

const HELP_COLUMN = 32;

/** The --help text of a command: its usage line and one line per option with env name and default. */
export function helpText(usage: string, table: OptionTable): string {
  const lines = [`Usage: ${usage}`, '', 'Options (each also a config-file key and a CLOUDREST_* variable):'];
  lines.push(`  --config FILE                 JSON config file (env CLOUDREST_CONFIG)`);
  for (const [key, spec] of Object.entries(table)) {
    const arg = spec.type === 'bool' ? '' : spec.type === 'int' ? ' N' : ' VALUE';
    const left = `  --${flagName(key)}${arg}`;
    const def = spec.default === undefined ? '' : ` [default: ${Array.isArray(spec.default) ? spec.default.join(',') || 'none' : String(spec.default)}]`;
    // A flag too long for the column gets its description on the next line, never glued to it.
    const head = left.length < HELP_COLUMN ? left.padEnd(HELP_COLUMN) : `${left}\n${' '.repeat(HELP_COLUMN)}`;
    lines.push(`${head}${spec.description}${def}  (${envName(key)}, "${key}")`);
  }
  lines.push(`  --help                        show this help`);
  return lines.join('\n');
}
