import { mkdir, open, readdir, readFile, rename, rm, stat, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { PHONE_FILES, type PhoneFileKind } from './names.ts';

export interface UploadInfo {
  name: string;
  size: number;
  modifiedAt: string;
}

/** Logs grow by appending; past this size the file rotates (`.1` … `.3`). */
const LOG_ROTATE_BYTES = 5 * 1024 * 1024;
const LOG_KEEP = 3;

/**
 * What phones upload, on disk under `<dataDir>/uploads/<tenantId>/<mac>/`. Names come only from
 * {@link PHONE_FILES}, never from the request, so nothing outside that folder can be touched.
 */
export class UploadStore {
  constructor(private readonly root: string) {}

  private dir(tenantId: string, mac: string): string {
    if (!/^[0-9a-f]{12}$/.test(mac) || !/^[A-Za-z0-9-]{1,100}$/.test(tenantId)) throw new Error('bad upload owner');
    return join(this.root, tenantId, mac);
  }

  fileName(mac: string, kind: PhoneFileKind): string {
    return `${mac}-${kind}`;
  }

  async write(tenantId: string, mac: string, kind: PhoneFileKind, body: Buffer): Promise<void> {
    const dir = this.dir(tenantId, mac);
    await mkdir(dir, { recursive: true });
    const target = join(dir, this.fileName(mac, kind));
    if (PHONE_FILES[kind].append) {
      const size = await stat(target).then((s) => s.size, () => 0);
      if (size + body.length > LOG_ROTATE_BYTES) await this.rotate(target);
      await appendFile(target, body);
      return;
    }
    // Replace atomically: a crash leaves the old file or the new one, never half of either.
    const tmp = `${target}.${randomBytes(6).toString('hex')}.tmp`;
    const fh = await open(tmp, 'w', 0o640);
    try {
      await fh.writeFile(body);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
  }

  private async rotate(target: string): Promise<void> {
    await rm(`${target}.${LOG_KEEP}`, { force: true });
    for (let i = LOG_KEEP - 1; i >= 1; i--) await rename(`${target}.${i}`, `${target}.${i + 1}`).catch(() => undefined);
    await rename(target, `${target}.1`).catch(() => undefined);
  }

  async read(tenantId: string, mac: string, name: string): Promise<Buffer | undefined> {
    if (!this.isListedName(mac, name)) return undefined;
    return readFile(join(this.dir(tenantId, mac), name)).catch(() => undefined);
  }

  /** Names a device's folder may hold: its phone files and their rotated logs. */
  isListedName(mac: string, name: string): boolean {
    return Object.keys(PHONE_FILES).some((k) => name === `${mac}-${k}` || (PHONE_FILES[k as PhoneFileKind].append && new RegExp(`^${mac}-${k.replace('.', '\\.')}\\.[1-${LOG_KEEP}]$`).test(name)));
  }

  async list(tenantId: string, mac: string): Promise<UploadInfo[]> {
    const dir = this.dir(tenantId, mac);
    const names = await readdir(dir).catch(() => [] as string[]);
    const out: UploadInfo[] = [];
    for (const name of names.sort()) {
      if (!this.isListedName(mac, name)) continue;
      const s = await stat(join(dir, name)).catch(() => undefined);
      if (s?.isFile()) out.push({ name, size: s.size, modifiedAt: s.mtime.toISOString() });
    }
    return out;
  }

  /** Everything a tenant's phones uploaded (tenant purge). */
  async removeTenant(tenantId: string): Promise<void> {
    if (!/^[A-Za-z0-9-]{1,100}$/.test(tenantId)) throw new Error('bad upload owner');
    await rm(join(this.root, tenantId), { recursive: true, force: true });
  }

  /**
   * Rewrites every stored file of a tenant (or of one device) through `fn`, each replaced
   * atomically; returns how many changed. For anonymization.
   */
  async rewriteAll(tenantId: string, mac: string | undefined, fn: (text: string) => string): Promise<number> {
    const macs = mac ? [mac] : await readdir(join(this.root, tenantId)).catch(() => [] as string[]);
    let changed = 0;
    for (const m of macs) {
      if (!/^[0-9a-f]{12}$/.test(m)) continue;
      const dir = this.dir(tenantId, m);
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        if (!this.isListedName(m, name)) continue;
        const file = join(dir, name);
        const before = await readFile(file, 'latin1');
        const after = fn(before);
        if (after === before) continue;
        const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
        const fh = await open(tmp, 'w', 0o640);
        try {
          await fh.writeFile(after, 'latin1');
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(tmp, file);
        changed++;
      }
    }
    return changed;
  }

  async removeDevice(tenantId: string, mac: string): Promise<void> {
    await rm(this.dir(tenantId, mac), { recursive: true, force: true });
  }
}
