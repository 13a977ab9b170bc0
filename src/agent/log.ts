/**
 * A tiny JSON-lines logger for the agent (the bundle carries no pino). One line per event, the shape
 * of pino's: {"time":1700000000000,"level":"info","msg":"connected","hub":"tls://hub:7443"}.
 */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFields = Record<string, unknown>;

export interface Logger {
  trace(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  fatal(msg: string, fields?: LogFields): void;
  isEnabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  /** Lowest level written; 'silent' writes nothing. Default 'info'. */
  level?: LogLevel | 'silent';
  /** Where lines go. Default: process.stdout. */
  write?: (line: string) => void;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const min = level === 'silent' ? LOG_LEVELS.length : LOG_LEVELS.indexOf(level);
  const write = options.write ?? writeStdout;
  const emit = (lvl: LogLevel, msg: string, fields?: LogFields): void => {
    if (LOG_LEVELS.indexOf(lvl) < min) return;
    const entry: Record<string, unknown> = { time: Date.now(), level: lvl, msg };
    if (fields) {
      for (const [k, v] of Object.entries(fields)) {
        if (v !== undefined && !(k in entry)) entry[k] = v instanceof Error ? errorFields(v) : v;
      }
    }
    let line: string;
    try {
      line = JSON.stringify(entry);
    } catch {
      line = JSON.stringify({ time: entry.time, level: lvl, msg, logError: 'fields not serialisable' });
    }
    write(`${line}\n`);
  };
  return {
    trace: (msg, fields) => emit('trace', msg, fields),
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    fatal: (msg, fields) => emit('fatal', msg, fields),
    isEnabled: (lvl) => LOG_LEVELS.indexOf(lvl) >= min,
  };
}

let stdoutGuarded = false;

function writeStdout(line: string): void {
  if (!stdoutGuarded) {
    stdoutGuarded = true;
    // A closed stdout (EPIPE: the supervisor reading our logs went away) must not kill the agent.
    process.stdout.on('error', () => {});
  }
  process.stdout.write(line);
}

/** An Error as JSON: type, message and code (not the stack: these are operational events). */
export function errorFields(err: Error): Record<string, unknown> {
  const out: Record<string, unknown> = { type: err.name, message: err.message };
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  return out;
}

/** A short human reason for an error value, for log fields and 'disconnected' events. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
