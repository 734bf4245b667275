import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Secrets at rest: AES-256-GCM under a 32-byte master key. A sealed value is
 * `enc:v1:<key id>:<base64 of iv | tag | ciphertext>`; the key id (first bytes of the key's
 * SHA-256) lets a keyring open values sealed under an older key while a rotation is under way.
 */
const PREFIX = 'enc:v1:';

export const keyId = (key: Buffer): string => createHash('sha256').update(key).digest('hex').slice(0, 8);

export class SecretBox {
  readonly #primary: Buffer;
  readonly #keys = new Map<string, Buffer>();

  /** `keys[0]` seals; every key opens what it sealed. */
  constructor(keys: Buffer[]) {
    if (keys.length === 0 || keys.some((k) => k.length !== 32)) throw new Error('master keys must be 32 bytes');
    this.#primary = keys[0] as Buffer;
    for (const k of keys) this.#keys.set(keyId(k), k);
  }

  /** The sealing key itself (backups are encrypted with it too). */
  get primaryKey(): Buffer {
    return this.#primary;
  }

  seal(plain: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.#primary, iv);
    const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return `${PREFIX}${keyId(this.#primary)}:${Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64')}`;
  }

  /** Plain text back; a value that was never sealed (older data) passes through unchanged. */
  open(value: string): string {
    if (!value.startsWith(PREFIX)) return value;
    const rest = value.slice(PREFIX.length);
    const colon = rest.indexOf(':');
    const id = rest.slice(0, colon);
    const key = this.#keys.get(id);
    if (!key) throw new Error(`a secret is sealed under master key ${id}, which is not loaded`);
    const raw = Buffer.from(rest.slice(colon + 1), 'base64');
    const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
    d.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8');
  }
}

/** Parses a key given as 64 hex digits or base64 of 32 bytes. */
export function parseKey(text: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (key.length !== 32) throw new Error('a master key is 32 bytes, written as 64 hex digits or base64');
  return key;
}

/**
 * The master key: the configured one (`EDGEPROV_MASTER_KEY`), else the key file, else a new key
 * written to the key file with mode 0600. A `<file>.next` left by an interrupted rotation is loaded
 * too, so nothing sealed under either key is lost.
 */
export function loadKeyring(opts: { masterKey?: string | undefined; keyFile: string }): { box: SecretBox; source: 'config' | 'file' | 'generated' } {
  const next = `${opts.keyFile}.next`;
  const extra = existsSync(next) ? [parseKey(readFileSync(next, 'utf8'))] : [];
  if (opts.masterKey) return { box: new SecretBox([...extra, parseKey(opts.masterKey)]), source: 'config' };
  if (existsSync(opts.keyFile)) return { box: new SecretBox([...extra, parseKey(readFileSync(opts.keyFile, 'utf8'))]), source: 'file' };
  const key = randomBytes(32);
  writeKeyFile(opts.keyFile, key);
  return { box: new SecretBox([key]), source: 'generated' };
}

export function writeKeyFile(path: string, key: Buffer): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${key.toString('hex')}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}
