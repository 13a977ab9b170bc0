/**
 * `cloudrest agent provision`: in-factory provisioning (seed 002 "Device Factory Provisioning").
 *
 * 1. The device id comes from the id file (a flash serial such as /sys/.../machine_udid), trimmed and
 *    checked; when that file does not exist a new id is made (and written there at the end).
 * 2. The id is registered with the hub's factory API (POST /v1/factory/devices, factory key), which
 *    answers the device secret and the identity (SHA-256 of the id) — the same answer every time for
 *    the same id and key, so provisioning is idempotent.
 * 3. The identity file and credentials.json are written into the output folder, mode 0600, all at once
 *    (atomically, together with a new id file): a failure at any step leaves no partial files.
 *
 * Node built-ins only: this runs from the bundled single-file agent on the device.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { ConfigError, httpUrlOption } from '../config/load.js';
import type { ProvisionConfig } from '../config/provision-options.js';
import { newId } from '../core/secrets.js';
import { deviceIdProblem, deviceNameProblem, emailProblem, normalizeOwnerEmail } from '../core/device-fields.js';
import { writeFilesAtomically, type FileToWrite } from './atomic-files.js';
import { parseHubUrl } from './connector.js';
import { CREDENTIALS_FILE, IDENTITY_FILE, credentialsJson, identityOf, readCredentials, type DeviceCredentials } from './credentials.js';

const FACTORY_PATH = '/v1/factory/devices';
/** A device id is at most 128 characters; a file much larger than that is not an id file. */
const MAX_ID_FILE_BYTES = 4096;
const MAX_ANSWER_BYTES = 64 * 1024;

/** The hub could not be reached or refused: exit 1, nothing written. */
export class ProvisionError extends Error {
  override readonly name = 'ProvisionError';
}

export interface ProvisionResult {
  credentials: DeviceCredentials;
  /** True when the hub registered the device now; false when it already had it from this key. */
  created: boolean;
  /** True when the id was made here (the id file did not exist). */
  madeId: boolean;
  files: string[];
}

async function readDeviceId(file: string): Promise<string | undefined> {
  let raw: Buffer;
  try {
    raw = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`--id-file ${file}: ${(err as Error).message}`);
  }
  if (raw.length > MAX_ID_FILE_BYTES) throw new ConfigError(`--id-file ${file}: ${raw.length} bytes is too long for a device id`);
  // Serial files from the kernel end with a newline (and may be NUL-padded).
  const id = raw.toString('utf8').replace(/\0+$/, '').trim();
  const problem = deviceIdProblem(id);
  if (problem) throw new ConfigError(`--id-file ${file}: ${JSON.stringify(id.slice(0, 140))} is not a usable device id (${problem})`);
  return id;
}

/** The factory URL without a trailing slash, query or fragment; a path prefix (reverse proxy) stays. */
function baseOf(factory: URL): string {
  return `${factory.origin}${factory.pathname.replace(/\/+$/, '')}`;
}

/** The default tunnel URL: the agent WebSocket beside the factory API (same host, port and prefix). */
function defaultHubUrl(factory: URL): string {
  return `${baseOf(factory).replace(/^http/, 'ws')}/v1/agent`;
}

interface FactoryAnswer {
  status: number;
  body: unknown;
}

function post(url: URL, key: string, payload: string, ca: string | undefined, timeoutMs: number): Promise<FactoryAnswer> {
  return new Promise((resolve, reject) => {
    const options = {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), authorization: `Bearer ${key}`, accept: 'application/json' },
      ...(ca !== undefined ? { ca: [...rootCertificates, ca] } : {}),
    };
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_ANSWER_BYTES) req.destroy(new Error(`answer larger than ${MAX_ANSWER_BYTES} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: reported as text
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

function describeRefusal(a: FactoryAnswer): string {
  const e = (a.body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (e && typeof e.code === 'string') return `${a.status} ${e.code}: ${String(e.message ?? '')}`;
  return `${a.status} ${typeof a.body === 'string' ? a.body.slice(0, 200) : JSON.stringify(a.body).slice(0, 200)}`;
}

/** Checks the options, then provisions. Throws ConfigError (bad input) or ProvisionError (the hub). */
export async function provision(c: ProvisionConfig): Promise<ProvisionResult> {
  const factory = httpUrlOption('--factory', c.factory);
  const hub = c.hub !== undefined && c.hub.length > 0 ? [...c.hub] : [defaultHubUrl(factory)];
  for (const h of hub) parseHubUrl(h);
  const name = c.name;
  if (name !== undefined) {
    const p = deviceNameProblem(name);
    if (p) throw new ConfigError(`--name: ${p}`);
  }
  const email = normalizeOwnerEmail(c.email);
  if (email !== null && emailProblem(email)) throw new ConfigError(`--email: ${emailProblem(email)!}`);
  const ca = c.tlsCa === undefined ? undefined : await readFile(c.tlsCa, 'utf8').catch((err: Error) => {
    throw new ConfigError(`--tls-ca ${c.tlsCa}: ${err.message}`);
  });

  const known = await readDeviceId(c.idFile);
  const deviceId = known ?? newId('d_');
  const outStat = await stat(c.out).catch(() => undefined);
  if (outStat !== undefined && !outStat.isDirectory()) throw new ConfigError(`--out ${c.out}: not a folder`);
  // Never replace another device's credentials: that device would lose its identity.
  const existing = outStat ? await readCredentials(c.out) : undefined;
  if (existing !== undefined && existing.deviceId !== deviceId) {
    throw new ConfigError(`--out ${c.out} holds the credentials of device ${existing.deviceId}, not ${deviceId}; remove them or choose another folder`);
  }

  const endpoint = new URL(`${baseOf(factory)}${FACTORY_PATH}`);
  const payload = JSON.stringify({ id: deviceId, ...(name !== undefined ? { name } : {}), ...(email !== null ? { email } : {}) });
  let answer: FactoryAnswer;
  try {
    answer = await post(endpoint, c.factoryKey, payload, ca, c.timeoutMs);
  } catch (err) {
    throw new ProvisionError(`cannot reach the hub at ${endpoint.href}: ${(err as Error).message}`);
  }
  if (answer.status !== 200 && answer.status !== 201) throw new ProvisionError(`the hub refused to provision ${deviceId}: ${describeRefusal(answer)}`);
  const body = answer.body as { id?: unknown; secret?: unknown; identity?: unknown } | null;
  const identity = identityOf(deviceId);
  if (body?.id !== deviceId || typeof body.secret !== 'string' || body.secret.length === 0 || body.secret.length > 512) {
    throw new ProvisionError(`the hub's answer is not a provisioning answer for ${deviceId}: ${JSON.stringify(answer.body).slice(0, 200)}`);
  }
  // Seed 002: the factory server sends back the device id hashed with SHA-256, which becomes the identity file.
  if (body.identity !== identity) throw new ProvisionError(`the hub's identity for ${deviceId} is not the SHA-256 of its id`);

  const credentials: DeviceCredentials = { deviceId, secret: body.secret, hub, identity, factory: baseOf(factory) };
  await mkdir(c.out, { recursive: true, mode: 0o700 });
  const files: FileToWrite[] = [
    { path: join(c.out, CREDENTIALS_FILE), content: credentialsJson(credentials), mode: 0o600 },
    { path: join(c.out, IDENTITY_FILE), content: `${identity}\n`, mode: 0o600 },
  ];
  // The id is not a secret; other software on the device may read it.
  if (known === undefined) files.push({ path: c.idFile, content: `${deviceId}\n`, mode: 0o644 });
  await writeFilesAtomically(files);
  return { credentials, created: answer.status === 201, madeId: known === undefined, files: files.map((f) => f.path) };
}
