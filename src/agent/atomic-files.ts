/**
 * Writes several files so that either all of them get their new content or none changes: each is
 * written to a temporary file beside it (same folder, so the rename cannot cross file systems), synced,
 * and only when every one is on disk are they renamed over their targets. A crash or an error before
 * the renames leaves the old files as they were (and the temporaries removed, unless the process died).
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface FileToWrite {
  path: string;
  content: string;
  /** Permission bits, e.g. 0o600 for credentials. */
  mode: number;
}

/**
 * A new temporary file beside `f.path` holding its content with its mode (from creation, before any
 * byte), synced; its path, for the caller to rename or link into place. Nothing is left on failure.
 */
export async function writeTemp(f: FileToWrite): Promise<string> {
  const tmp = join(dirname(f.path), `.${basename(f.path)}.${randomBytes(6).toString('hex')}.tmp`);
  // 'wx': never follow or reuse an existing file; the mode applies from creation, before any byte.
  const h = await open(tmp, 'wx', f.mode);
  try {
    await h.writeFile(f.content, 'utf8');
    await h.chmod(f.mode); // the umask may have taken bits away
    await h.sync();
  } catch (err) {
    await h.close();
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await h.close();
  return tmp;
}

/** Syncs a folder so the renames in it survive a power loss. Best effort: not every system allows it. */
async function syncDir(dir: string): Promise<void> {
  try {
    const h = await open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // e.g. EISDIR/EPERM on some platforms; the data itself is already synced.
  }
}

export async function writeFilesAtomically(files: readonly FileToWrite[]): Promise<void> {
  const temps: string[] = [];
  try {
    for (const f of files) temps.push(await writeTemp(f));
  } catch (err) {
    await Promise.all(temps.map((t) => unlink(t).catch(() => {})));
    throw err;
  }
  for (const [i, f] of files.entries()) await rename(temps[i]!, f.path);
  for (const dir of new Set(files.map((f) => dirname(f.path)))) await syncDir(dir);
}
