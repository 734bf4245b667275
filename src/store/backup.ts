import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PassThrough, Readable, Transform } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';

/**
 * Encrypted backups: a consistent copy of the database and the data files, gzip-compressed and
 * sealed with AES-256-GCM under the master key, written as a stream. Layout of a `.epbak` file:
 * `EPBAK1\n`, one JSON header line (key id, IV, time, names), the ciphertext, then the 16-byte GCM
 * tag. A restore decrypts and checks everything into a temporary folder before it replaces a file.
 */
const MAGIC = 'EPBAK1\n';

export interface BackupHeader {
  format: 1;
  createdAt: string;
  keyId: string;
  iv: string;
}

export interface BackupSources {
  /** Makes a consistent copy of the database at the given path (SQLite `VACUUM INTO`). */
  snapshot: (to: string) => Promise<void>;
  dataDir: string;
  /** Folders below the data dir that are backed up besides the database. */
  folders: string[];
}

export const keyIdOf = (key: Buffer): string => createHash('sha256').update(key).digest('hex').slice(0, 8);

async function* walk(root: string, dir: string): AsyncGenerator<string> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(root, p);
    else if (e.isFile()) yield relative(root, p);
  }
}

/** Archive entries: `[u16 name length][name][u64 size][bytes]`, ended by a zero-length name. */
async function* archive(files: Array<{ name: string; path: string }>): AsyncGenerator<Buffer> {
  for (const f of files) {
    const size = (await stat(f.path)).size;
    const name = Buffer.from(f.name, 'utf8');
    const head = Buffer.alloc(2 + name.length + 8);
    head.writeUInt16BE(name.length, 0);
    name.copy(head, 2);
    head.writeBigUInt64BE(BigInt(size), 2 + name.length);
    yield head;
    let sent = 0;
    for await (const chunk of createReadStream(f.path, { end: size - 1 < 0 ? 0 : size - 1 })) {
      const b = chunk as Buffer;
      const take = Math.min(b.length, size - sent);
      if (take > 0) yield b.subarray(0, take);
      sent += take;
      if (sent >= size) break;
    }
  }
  yield Buffer.from([0, 0]);
}

export interface BackupResult {
  file: string;
  bytes: number;
  files: number;
}

/** Writes one backup into `dir`; `onProgress` gets the bytes read so far and the total. */
export async function createBackup(src: BackupSources, key: Buffer, dir: string, now: Date, onProgress?: (done: number, total: number) => void): Promise<BackupResult> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const work = await mkdtemp(join(dir, '.work-'));
  try {
    const dbCopy = join(work, 'edgeprov.db');
    await src.snapshot(dbCopy);
    const files = [{ name: 'edgeprov.db', path: dbCopy }];
    for (const folder of src.folders) {
      for await (const rel of walk(src.dataDir, join(src.dataDir, folder))) files.push({ name: rel.split(sep).join('/'), path: join(src.dataDir, rel) });
    }
    let total = 0;
    for (const f of files) total += (await stat(f.path)).size;
    const iv = randomBytes(12);
    const header: BackupHeader = { format: 1, createdAt: now.toISOString(), keyId: keyIdOf(key), iv: iv.toString('base64') };
    const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    const final = join(dir, `edgeprov-${stamp}.epbak`);
    const tmp = `${final}.partial`;
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(JSON.stringify(header)));
    const out = createWriteStream(tmp, { mode: 0o600 });
    out.write(MAGIC + JSON.stringify(header) + '\n');
    let done = 0;
    const count = new Transform({
      transform(chunk: Buffer, _e, cb) {
        done += chunk.length;
        onProgress?.(Math.min(done, total), total);
        cb(null, chunk);
      },
    });
    await pipeline(Readable.from(archive(files)), count, createGzip({ level: 6 }), cipher, out, { end: false });
    await new Promise<void>((resolve, reject) => out.end(cipher.getAuthTag(), (err?: Error | null) => (err ? reject(err) : resolve())));
    const fh = await open(tmp, 'r');
    await fh.sync();
    await fh.close();
    await rename(tmp, final);
    return { file: final, bytes: (await stat(final)).size, files: files.length };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Keeps the newest `keep` backups in `dir`; returns the names removed. */
export async function pruneBackups(dir: string, keep: number): Promise<string[]> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => /^edgeprov-\d{8}T\d{6}Z\.epbak$/.test(n)).sort();
  const drop = names.slice(0, Math.max(0, names.length - keep));
  for (const n of drop) await rm(join(dir, n), { force: true });
  return drop;
}

export class BackupError extends Error {}

/** Reads a backup's header without the key. */
export async function readHeader(file: string): Promise<{ header: BackupHeader; offset: number }> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(4096);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const text = buf.subarray(0, bytesRead).toString('latin1');
    if (!text.startsWith(MAGIC)) throw new BackupError('not an edgeprov backup');
    const nl = text.indexOf('\n', MAGIC.length);
    if (nl < 0) throw new BackupError('backup header is truncated');
    let header: BackupHeader;
    try {
      header = JSON.parse(text.slice(MAGIC.length, nl)) as BackupHeader;
    } catch {
      throw new BackupError('backup header is damaged');
    }
    if (header.format !== 1 || typeof header.iv !== 'string' || typeof header.keyId !== 'string') throw new BackupError('unknown backup format');
    return { header, offset: nl + 1 };
  } finally {
    await fh.close();
  }
}

/**
 * Decrypts and checks a whole backup into `into` (a fresh folder). Throws {@link BackupError} for
 * another key, a truncated or a tampered file; nothing outside `into` is touched.
 */
export async function unpackBackup(file: string, key: Buffer, into: string): Promise<{ header: BackupHeader; files: string[] }> {
  const { header, offset } = await readHeader(file);
  if (header.keyId !== keyIdOf(key)) throw new BackupError(`this backup was made under master key ${header.keyId}, not the current one (${keyIdOf(key)})`);
  const size = (await stat(file)).size;
  if (size < offset + 16) throw new BackupError('backup is truncated');
  const tag = Buffer.alloc(16);
  const fh = await open(file, 'r');
  await fh.read(tag, 0, 16, size - 16);
  await fh.close();
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(header.iv, 'base64'));
  decipher.setAAD(Buffer.from(JSON.stringify(header)));
  decipher.setAuthTag(tag);
  const names: string[] = [];
  // Parse the archive as it streams; data lands in `into`, verified only when the tag checks out.
  let pending = Buffer.alloc(0);
  let current: { fh: import('node:fs/promises').FileHandle; left: bigint } | undefined;
  let ended = false;
  const sink = new PassThrough();
  const consume = async () => {
    for await (const chunk of sink) {
      pending = Buffer.concat([pending, chunk as Buffer]);
      for (;;) {
        if (ended) {
          if (pending.length) throw new BackupError('data after the end of the archive');
          break;
        }
        if (current) {
          const take = Number(current.left < BigInt(pending.length) ? current.left : BigInt(pending.length));
          if (take > 0) await current.fh.write(pending.subarray(0, take));
          pending = pending.subarray(take);
          current.left -= BigInt(take);
          if (current.left > 0n) break;
          await current.fh.close();
          current = undefined;
          continue;
        }
        if (pending.length < 2) break;
        const nameLen = pending.readUInt16BE(0);
        if (nameLen === 0) {
          ended = true;
          pending = pending.subarray(2);
          continue;
        }
        if (pending.length < 2 + nameLen + 8) break;
        const name = pending.subarray(2, 2 + nameLen).toString('utf8');
        if (name.split('/').some((s) => s === '' || s === '.' || s === '..') || name.includes('\\') || name.includes('\0')) throw new BackupError('bad file name in backup');
        const left = pending.readBigUInt64BE(2 + nameLen);
        pending = pending.subarray(2 + nameLen + 8);
        const target = join(into, name);
        await mkdir(dirname(target), { recursive: true });
        current = { fh: await open(target, 'w', 0o600), left };
        names.push(name);
      }
    }
  };
  const consuming = consume();
  try {
    await pipeline(createReadStream(file, { start: offset, end: size - 17 }), decipher, createGunzip(), sink);
    await consuming;
  } catch (err) {
    await consuming.catch(() => undefined);
    await current?.fh.close().catch(() => undefined);
    if (err instanceof BackupError) throw err;
    throw new BackupError(`backup failed its integrity check (${(err as Error).message.slice(0, 120)}): truncated, damaged or tampered with`);
  }
  if (!ended || !names.includes('edgeprov.db')) throw new BackupError('backup is incomplete');
  return { header, files: names };
}

/**
 * Restores a backup over the data dir: verified completely first, then the database and folders
 * are swapped in. The server must be stopped.
 */
export async function restoreBackup(file: string, key: Buffer, dataDir: string, folders: string[]): Promise<{ header: BackupHeader; files: number }> {
  const staging = await mkdtemp(join(dataDir, '.restore-'));
  try {
    const { header, files } = await unpackBackup(file, key, staging);
    const db = join(dataDir, 'edgeprov.db');
    for (const suffix of ['-wal', '-shm']) await rm(db + suffix, { force: true });
    await rename(join(staging, 'edgeprov.db'), db);
    for (const folder of folders) {
      const from = join(staging, folder);
      const to = join(dataDir, folder);
      await rm(`${to}.old`, { recursive: true, force: true });
      if (existsSync(to)) await rename(to, `${to}.old`);
      if (existsSync(from)) await rename(from, to);
      await rm(`${to}.old`, { recursive: true, force: true });
    }
    return { header, files: files.length };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

