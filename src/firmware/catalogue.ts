import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import type { Clock } from '../clock.ts';
import type { FirmwareImage } from '../domain/types.ts';
import { AppError, conflict, invalid, notFound } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Store } from '../store/store.ts';
import { PartTable, VERSION, partFromFileName } from './parts.ts';

/**
 * The firmware catalogue: images stored once by content (`<dataDir>/firmware/blobs/<sha256>`),
 * described in the store by version and part number. Uploads stream to a temporary file while the
 * sha256 is computed; only a complete image within the size limit is kept, so a truncated or
 * oversize upload leaves nothing behind.
 */
export interface CatalogueOptions {
  dataDir: string;
  store: Store;
  clock: Clock;
  logger: Logger;
  parts: PartTable;
  /** Largest image accepted. */
  maxImageBytes: number;
}

export type Progress = (done: number, total: number | undefined) => void;

class TooLarge extends Error {}

export class FirmwareCatalogue {
  readonly #dir: string;
  constructor(private readonly o: CatalogueOptions) {
    this.#dir = join(o.dataDir, 'firmware');
  }

  get parts(): PartTable {
    return this.o.parts;
  }

  blobPath(sha256: string): string {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error('bad blob name');
    return join(this.#dir, 'blobs', sha256);
  }

  /** Checks a version and an image name; returns the part number (`null`: combined image). */
  #check(version: string, fileName: string): string | null {
    if (!VERSION.test(version)) throw invalid([{ path: 'version', message: 'must look like 6.4.3.5018 (digits, letters, dots, dashes)' }]);
    const part = partFromFileName(fileName);
    if (part === undefined) throw invalid([{ path: 'fileName', message: `"${fileName.slice(0, 80)}" is not a firmware image name: expected <part-number>.sip.ld or sip.ld` }]);
    if (part !== null && !this.o.parts.modelsOf(part)) {
      throw invalid([{ path: 'fileName', message: `part number ${part} is not in the model table (templates/polycom-parts.json); give the models it serves` }]);
    }
    return part;
  }

  /**
   * Adds one image from a stream. `models` is needed only for a part number the table does not
   * know (or to narrow a combined image). Nothing is kept unless the whole stream arrives within
   * the size limit (and, when given, exactly `expectedBytes`).
   */
  async add(version: string, fileName: string, source: Readable, opts: { models?: string[]; expectedBytes?: number; onProgress?: Progress } = {}): Promise<FirmwareImage> {
    let part: string | null;
    try {
      part = this.#check(version, fileName);
    } catch (err) {
      const unknownPart = err instanceof AppError && opts.models?.length && /not in the model table/.test(JSON.stringify(err.details));
      if (!unknownPart) {
        source.resume();
        throw err;
      }
      part = partFromFileName(fileName) as string;
    }
    const models = opts.models?.length ? opts.models : part ? (this.o.parts.modelsOf(part) ?? []) : [];
    await mkdir(join(this.#dir, 'blobs'), { recursive: true });
    await mkdir(join(this.#dir, 'tmp'), { recursive: true });
    const tmp = join(this.#dir, 'tmp', `${randomBytes(8).toString('hex')}.part`);
    const hash = createHash('sha256');
    let size = 0;
    const max = this.o.maxImageBytes;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        if (size > max) return cb(new TooLarge());
        hash.update(chunk);
        opts.onProgress?.(size, opts.expectedBytes);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(source, meter, createWriteStream(tmp, { mode: 0o640 }));
      if (opts.expectedBytes !== undefined && size !== opts.expectedBytes) {
        throw new AppError('bad_request', `the upload ended after ${size} of ${opts.expectedBytes} bytes; nothing was kept`);
      }
      if (size === 0) throw new AppError('bad_request', 'the image is empty; nothing was kept');
    } catch (err) {
      await rm(tmp, { force: true });
      if (err instanceof TooLarge) throw new AppError('payload_too_large', `an image may be at most ${max} bytes; nothing was kept`);
      if (err instanceof AppError) throw err;
      throw new AppError('bad_request', `the upload broke off (${(err as Error).message}); nothing was kept`);
    }
    const sha256 = hash.digest('hex');
    await rename(tmp, this.blobPath(sha256));
    const previous = await this.o.store.firmware.image(version, part);
    const image: FirmwareImage = { version, partNumber: part, models, sha256, size, fileName: part ? `${part}.sip.ld` : 'sip.ld', createdAt: this.o.clock.now().toISOString() };
    await this.o.store.firmware.putImage(image);
    if (previous && previous.sha256 !== sha256) await this.#dropBlobIfUnused(previous.sha256);
    this.o.logger.info({ version, part, size, sha256 }, 'firmware image added');
    return image;
  }

  /** Adds every `*.sip.ld` of a folder as one release. */
  async addFolder(version: string, dir: string, onProgress?: (file: string, done: number, total: number) => void): Promise<FirmwareImage[]> {
    const names = (await readdir(dir)).filter((n) => partFromFileName(n) !== undefined).sort();
    if (names.length === 0) throw invalid([{ path: 'folder', message: 'no *.sip.ld images in it' }]);
    for (const n of names) this.#check(version, n);
    const out: FirmwareImage[] = [];
    for (const n of names) {
      const file = join(dir, n);
      const { size } = await stat(file);
      out.push(await this.add(version, n, createReadStream(file), { expectedBytes: size, onProgress: (d) => onProgress?.(n, d, size) }));
    }
    return out;
  }

  /** Adds every `*.sip.ld` inside a `.zip` (a UC release bundle); other entries are skipped. */
  async addZip(version: string, zipFile: string, onProgress?: (file: string, done: number, total: number) => void): Promise<FirmwareImage[]> {
    const zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
      yauzl.open(zipFile, { lazyEntries: true, autoClose: false, strictFileNames: false, validateEntrySizes: true }, (err, z) => (err || !z ? reject(err) : resolve(z))),
    ).catch((err: Error) => {
      throw new AppError('bad_request', `not a readable zip file: ${err.message}`);
    });
    try {
      const entries: yauzl.Entry[] = [];
      await new Promise<void>((resolve, reject) => {
        zip.on('entry', (e: yauzl.Entry) => {
          if (!e.fileName.endsWith('/') && partFromFileName(e.fileName) !== undefined) entries.push(e);
          zip.readEntry();
        });
        zip.on('end', () => resolve());
        zip.on('error', reject);
        zip.readEntry();
      }).catch((err: Error) => {
        throw new AppError('bad_request', `broken zip file: ${err.message}`);
      });
      if (entries.length === 0) throw invalid([{ path: 'zip', message: 'no *.sip.ld images in it' }]);
      for (const e of entries) this.#check(version, e.fileName);
      const out: FirmwareImage[] = [];
      for (const e of entries) {
        const stream = await new Promise<Readable>((resolve, reject) => zip.openReadStream(e, (err, s) => (err || !s ? reject(err) : resolve(s))));
        const name = e.fileName.split('/').pop() as string;
        out.push(await this.add(version, name, stream, { expectedBytes: e.uncompressedSize, onProgress: (d) => onProgress?.(name, d, e.uncompressedSize) }));
      }
      return out;
    } finally {
      zip.close();
    }
  }

  /** Versions with their images, newest first by name. */
  async versions(): Promise<Array<{ version: string; images: FirmwareImage[] }>> {
    const by = new Map<string, FirmwareImage[]>();
    for (const i of await this.o.store.firmware.images()) by.set(i.version, [...(by.get(i.version) ?? []), i]);
    return [...by].sort((a, b) => compareVersions(b[0], a[0])).map(([version, images]) => ({ version, images }));
  }

  async version(version: string): Promise<{ version: string; images: FirmwareImage[] }> {
    const images = await this.o.store.firmware.images(version);
    if (images.length === 0) throw notFound('firmware version');
    return { version, images };
  }

  /** Removes a version; refused while any tenant assigns or rolls it out. */
  async remove(version: string): Promise<void> {
    const images = await this.o.store.firmware.images(version);
    if (images.length === 0) throw notFound('firmware version');
    if (await this.o.store.firmware.versionInUse(version)) throw conflict(`version ${version} is assigned or being rolled out; change those first`);
    await this.o.store.firmware.deleteVersion(version);
    for (const i of images) await this.#dropBlobIfUnused(i.sha256);
  }

  async #dropBlobIfUnused(sha256: string): Promise<void> {
    if ((await this.o.store.firmware.blobUsers(sha256)) === 0) await rm(this.blobPath(sha256), { force: true });
  }
}

/** `5.9.10` after `5.9.9`: numeric where both parts are numbers. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/);
  const pb = b.split(/[.-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    const d = /^\d+$/.test(x) && /^\d+$/.test(y) ? Number(x) - Number(y) : x.localeCompare(y);
    if (d !== 0) return d;
  }
  return 0;
}
