/**
 * A config option: one definition gives the flag (`--http-port`), the config-file key (`httpPort`),
 * the environment variable (`CLOUDREST_HTTP_PORT`), the default and the --help line.
 */
export type OptionType = 'string' | 'int' | 'bool' | 'list';

export interface OptionSpec {
  readonly type: OptionType;
  readonly description: string;
  /** Default value; `undefined` means "not set". */
  readonly default?: string | number | boolean | readonly string[];
  readonly min?: number;
  readonly max?: number;
  /** Allowed values for a string option. */
  readonly choices?: readonly string[];
  readonly required?: boolean;
}

export type OptionTable = Readonly<Record<string, OptionSpec>>;

type ValueOf<S extends OptionSpec> = S['type'] extends 'int'
  ? number
  : S['type'] extends 'bool'
    ? boolean
    : S['type'] extends 'list'
      ? readonly string[]
      : string;

/** The frozen, validated config object an option table produces. */
export type ConfigOf<T extends OptionTable> = {
  readonly [K in keyof T]: T[K] extends { required: true }
    ? ValueOf<T[K]>
    : T[K] extends { default: unknown }
      ? ValueOf<T[K]>
      : ValueOf<T[K]> | undefined;
};

export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

export function envName(key: string): string {
  return `CLOUDREST_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}
