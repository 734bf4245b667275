import { VERSION, partFromFileName } from '../firmware/parts.ts';

/**
 * The names a phone may ask for, parsed from hostile input. Everything not listed here does not
 * exist (404), whatever is on disk.
 */

export const UPLOAD_DIRS = { log: 'logs', overrides: 'overrides', contacts: 'contacts', callLists: 'calllists' } as const;

/** Files a phone stores on the server, by suffix, with the most it may send in one PUT. */
export const PHONE_FILES = {
  'boot.log': { dir: UPLOAD_DIRS.log, maxBytes: 1024 * 1024, append: true, xml: false },
  'app.log': { dir: UPLOAD_DIRS.log, maxBytes: 1024 * 1024, append: true, xml: false },
  'phone.cfg': { dir: UPLOAD_DIRS.overrides, maxBytes: 256 * 1024, append: false, xml: true },
  'web.cfg': { dir: UPLOAD_DIRS.overrides, maxBytes: 256 * 1024, append: false, xml: true },
  'directory.xml': { dir: UPLOAD_DIRS.contacts, maxBytes: 1024 * 1024, append: false, xml: true },
  'calls.xml': { dir: UPLOAD_DIRS.callLists, maxBytes: 1024 * 1024, append: false, xml: true },
} as const;
export type PhoneFileKind = keyof typeof PHONE_FILES;

export type FileRef =
  | { kind: 'master'; mac: string }
  | { kind: 'default-master' }
  | { kind: 'device-config'; mac: string }
  | { kind: 'defaults' }
  | { kind: 'bootstrap' }
  | { kind: 'ca' }
  | { kind: 'phone-file'; mac: string; file: PhoneFileKind }
  /** Optional files phones probe for that edgeprov does not serve (a 404 is normal). */
  | { kind: 'optional'; mac: string | null; name: string }
  /** A firmware image: `part` null for the combined `sip.ld`; `version` null for the tenant's assignment. */
  | { kind: 'firmware'; version: string | null; part: string | null };

const MAX_PATH = 255;

/**
 * Turns the raw, still percent-encoded path below a provisioning base into a safe relative name,
 * or `undefined`: `.`/`..` segments, empty segments (doubled slashes), backslashes, NUL and other
 * control characters, encoded separators and overlong names are all refused.
 */
export function safeRelativePath(raw: string): string | undefined {
  if (raw.length === 0 || raw.length > MAX_PATH * 3) return undefined;
  if (raw.includes('\\')) return undefined;
  const segments = raw.split('/');
  if (segments.length > 4) return undefined;
  const out: string[] = [];
  for (const seg of segments) {
    let d: string;
    try {
      d = decodeURIComponent(seg);
    } catch {
      return undefined;
    }
    if (d === '' || d === '.' || d === '..') return undefined;
    if (/[/\\\u0000-\u001f\u007f]/.test(d)) return undefined;
    out.push(d);
  }
  const path = out.join('/');
  return path.length <= MAX_PATH ? path : undefined;
}

const DIRS = new Set<string>(Object.values(UPLOAD_DIRS));
const MAC_SUFFIX = /^([0-9a-fA-F]{12})(?:-([a-z]+\.(?:cfg|xml|log)))?$/i;
const MAC_CFG = /^([0-9a-fA-F]{12})(\.cfg)$/i;

/** What a safe relative name refers to, or `undefined` when it is no file of the tree. */
export function parseName(path: string): FileRef | undefined {
  const parts = path.split('/');
  // Firmware: fw/<version>/<part>.sip.ld or …/sip.ld, the part prefixed to the whole name
  // (<part>.fw/<version>/sip.ld, seen in one capture), or <part>.sip.ld at the root.
  if (parts.length === 3 && VERSION.test(parts[1] as string)) {
    const version = parts[1] as string;
    if (parts[0] === 'fw') {
      const part = partFromFileName(parts[2] as string);
      return part === undefined ? undefined : { kind: 'firmware', version, part };
    }
    const prefixed = /^(\d{4}-\d{5}-\d{3})\.fw$/.exec(parts[0] as string);
    if (prefixed?.[1] && (parts[2] as string).toLowerCase() === 'sip.ld') return { kind: 'firmware', version, part: prefixed[1] };
    return undefined;
  }
  if (parts.length === 1) {
    const part = partFromFileName(parts[0] as string);
    if (part) return { kind: 'firmware', version: null, part };
  }
  if (parts.length > 2) return undefined;
  if (parts.length === 2 && !DIRS.has(parts[0] as string)) return undefined;
  const dir = parts.length === 2 ? (parts[0] as string) : null;
  const name = parts[parts.length - 1] as string;
  const lower = name.toLowerCase();

  if (dir === null) {
    if (lower === '000000000000.cfg') return { kind: 'default-master' };
    if (lower === 'defaults.cfg') return { kind: 'defaults' };
    if (lower === 'bootstrap.cfg') return { kind: 'bootstrap' };
    if (lower === 'ca.crt') return { kind: 'ca' };
    if (lower === '000000000000-license.cfg' || lower === '000000000000-directory.xml') return { kind: 'optional', mac: null, name: lower };
  }
  const m = MAC_SUFFIX.exec(name) ?? MAC_CFG.exec(name);
  if (!m?.[1]) return undefined;
  const mac = m[1].toLowerCase();
  if (mac === '000000000000') return undefined;
  const suffix = m[2]?.toLowerCase();
  if (suffix === undefined || suffix === '.cfg') {
    if (!/\.cfg$/i.test(name) && suffix === undefined) return undefined;
    return dir === null ? { kind: 'master', mac } : undefined;
  }
  if (suffix === 'device.cfg') return dir === null ? { kind: 'device-config', mac } : undefined;
  if (suffix in PHONE_FILES) {
    const kind = suffix as PhoneFileKind;
    // Root or the directory the master file names for that kind; nothing else.
    if (dir !== null && dir !== PHONE_FILES[kind].dir) return undefined;
    return { kind: 'phone-file', mac, file: kind };
  }
  if (suffix === 'license.cfg') return dir === null ? { kind: 'optional', mac, name: lower } : undefined;
  return undefined;
}

/** The MAC a name is about, if any. */
export const macOf = (ref: FileRef): string | null =>
  'mac' in ref ? ref.mac : null;
