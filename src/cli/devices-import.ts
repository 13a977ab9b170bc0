/**
 * `cloudrest devices import devices.csv`: registers many devices at once, all or none.
 *
 * The CSV (RFC 4180, parsed by csv-parse) has a header naming its columns, any of `id`, `name`,
 * `email`. An empty or absent id is made; an empty name becomes the id; an empty email means no owner
 * yet. Every row is checked and every problem reported with its line number before anything is
 * written; then all devices are added in one transaction. The secrets are printed (or written to
 * --out, mode 0600, never over an existing file) once: the database keeps only their hashes.
 */
import { existsSync, readFileSync } from 'node:fs';
import { link, readFile, unlink } from 'node:fs/promises';
import { parse } from 'csv-parse/sync';
import { writeTemp } from '../agent/atomic-files.js';
import { loadConfig, helpText } from '../config/load.js';
import type { OptionTable } from '../config/option.js';
import { deviceIdProblem, deviceNameProblem, emailProblem, normalizeOwnerEmail } from '../core/device-fields.js';
import { newId, newSecret, sha256Hex } from '../core/secrets.js';
import { DuplicateError, type NewDevice } from '../store/store.js';
import { dataOption, storeOption, UsageError, withStore } from './admin.js';
import { oneArgument } from './factory-keys.js';

export const devicesImportOptions = {
  data: dataOption,
  store: storeOption,
  json: { type: 'bool', default: false, description: 'Print JSON instead of CSV' },
  out: { type: 'string', description: 'Write the ids and secrets to this new file (mode 0600) instead of printing them' },
} as const satisfies OptionTable;

const COLUMNS = ['id', 'name', 'email'] as const;
type Column = (typeof COLUMNS)[number];
/** Reported problems; past this many the rest are counted, not listed. */
const MAX_LISTED_PROBLEMS = 20;

interface Row {
  line: number;
  id: string;
  name: string;
  email: string | null;
  secret: string;
}

function header(columns: string[]): Column[] {
  const names = columns.map((c) => c.trim().toLowerCase());
  for (const [i, n] of names.entries()) {
    if (!(COLUMNS as readonly string[]).includes(n)) throw new UsageError(`line 1: unknown column ${JSON.stringify(columns[i])} (the header names any of ${COLUMNS.join(', ')})`);
    if (names.indexOf(n) !== i) throw new UsageError(`line 1: column ${n} appears twice`);
  }
  return names as Column[];
}

function parseCsv(text: string, file: string): Array<{ line: number; record: Partial<Record<Column, string>> }> {
  try {
    const records = parse(text, {
      bom: true,
      columns: header,
      skip_empty_lines: true,
      trim: true,
      info: true,
    }) as Array<{ record: Partial<Record<Column, string>>; info: { lines: number } }>;
    return records.map((r) => ({ line: r.info.lines, record: r.record }));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${file}: ${(err as Error).message}`);
  }
}

function quote(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

function render(rows: Row[], json: boolean): string {
  if (json) return `${JSON.stringify(rows.map((r) => ({ line: r.line, id: r.id, name: r.name, email: r.email, secret: r.secret })))}\n`;
  return ['id,name,email,secret', ...rows.map((r) => [r.id, r.name, r.email ?? '', r.secret].map(quote).join(','))].join('\n') + '\n';
}

/** Checks every row; returns the devices to add, or throws one UsageError listing the problems. */
function checkRows(parsed: ReturnType<typeof parseCsv>, existing: Set<string>): Row[] {
  const problems: string[] = [];
  const seen = new Map<string, number>();
  const rows: Row[] = [];
  for (const { line, record } of parsed) {
    const id = record.id || newId('d_');
    const name = record.name || id;
    const email = normalizeOwnerEmail(record.email);
    const p = deviceIdProblem(id) ?? deviceNameProblem(name) ?? (email === null ? null : emailProblem(email));
    if (p) problems.push(`line ${line}: ${p}`);
    else if (seen.has(id)) problems.push(`line ${line}: device id ${id} is already on line ${seen.get(id)!}`);
    else if (existing.has(id)) problems.push(`line ${line}: a device with id ${id} already exists`);
    seen.set(id, seen.get(id) ?? line);
    rows.push({ line, id, name, email, secret: newSecret() });
  }
  if (problems.length > 0) {
    const listed = problems.slice(0, MAX_LISTED_PROBLEMS);
    if (problems.length > listed.length) listed.push(`... and ${problems.length - listed.length} more`);
    throw new UsageError(`nothing imported: ${problems.length} row${problems.length === 1 ? '' : 's'} with problems\n  ${listed.join('\n  ')}`);
  }
  return rows;
}

export async function devicesImport(argv: string[], out: (s: string) => void): Promise<void> {
  const { config, positionals } = loadConfig(devicesImportOptions, { argv });
  const file = oneArgument(positionals, 'CSV file', 'cloudrest devices import FILE.csv [--data DIR] [--store URL] [--json] [--out FILE]');
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${file}: ${(err as Error).message}`);
  }
  if (config.out !== undefined && existsSync(config.out)) throw new UsageError(`--out ${config.out} exists; secrets are never written over a file: choose a new one`);
  const parsed = parseCsv(text, file);
  if (parsed.length === 0) throw new UsageError(`${file}: no devices (a header line, then one device per line)`);

  await withStore(config, async (s) => {
    const existing = new Set<string>();
    for (const { record } of parsed) if (record.id && (await s.getDevice(record.id))) existing.add(record.id);
    const rows = checkRows(parsed, existing);
    const output = render(rows, config.json);
    // Written before the devices are added and put in place after: no secrets without devices, and
    // no devices whose secrets were lost because the file could not be written.
    const tmp = config.out === undefined ? undefined : await writeTemp({ path: config.out, content: output, mode: 0o600 });
    const devices: NewDevice[] = rows.map((r) => ({ id: r.id, name: r.name, email: r.email, secretHash: sha256Hex(r.secret) }));
    try {
      await s.createDevices(devices);
    } catch (err) {
      if (tmp !== undefined) await unlink(tmp).catch(() => {});
      if (!(err instanceof DuplicateError) || err.key === undefined) throw err;
      // Added by someone else since the check above.
      const line = rows.find((r) => r.id === err.key)?.line;
      throw new UsageError(`nothing imported: line ${line ?? '?'}: a device with id ${err.key} already exists`);
    }
    if (tmp !== undefined) {
      // link, not rename: it fails rather than replace a file that appeared meanwhile.
      try {
        await link(tmp, config.out!);
      } catch (err) {
        throw new Error(`the devices were imported, but ${config.out!} could not be created (${(err as Error).message}); their ids and secrets are in ${tmp}`);
      }
      await unlink(tmp);
    }
    if (config.out !== undefined) out(`imported ${rows.length} device${rows.length === 1 ? '' : 's'}; ids and secrets written to ${config.out} (mode 0600)`);
    else out(output.trimEnd());
  });
}

export const devicesImportHelp = () => helpText('cloudrest devices import FILE.csv [--data DIR] [--store URL] [--json] [--out FILE]   (FILE "-" reads standard input)', devicesImportOptions);
