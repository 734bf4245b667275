import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';

/**
 * The whole configuration of edgeprov: one strict schema. Sources, lowest to highest:
 * defaults < JSON file (`--config` / `EDGEPROV_CONFIG`) < `EDGEPROV_*` environment < CLI flags.
 * Every leaf `a.bC` is settable as `EDGEPROV_A_B_C` and `--a-b-c`. Parsed once, frozen, injected;
 * nothing else in the code reads `process.env`.
 */
export const configSchema = z
  .object({
    /** Folder for the database, certificates, uploads and firmware. @default "./data" */
    dataDir: z.string().min(1).default('./data'),
    /** Master key sealing secrets at rest (64 hex digits or base64 of 32 bytes); else the key file. */
    masterKey: z.string().min(32).max(100).optional(),
    /** Key file used when no masterKey is given; generated (mode 0600) at first start. @default "<dataDir>/master.key" */
    masterKeyFile: z.string().min(1).optional(),
    /** Address every listener binds. @default "0.0.0.0" */
    host: z.string().min(1).default('0.0.0.0'),
    /**
     * Host names or addresses phones and admins use to reach this server; the first one goes into
     * provisioning URLs, all of them into the TLS certificate. Empty: the machine's host name.
     */
    publicHosts: z.array(z.string().min(1).max(253)).default([]),
    http: z
      .object({
        enabled: z.boolean().default(true),
        port: z.number().int().min(0).max(65535).default(8080),
      })
      .strict()
      .prefault({}),
    https: z
      .object({
        enabled: z.boolean().default(true),
        port: z.number().int().min(0).max(65535).default(8443),
        /** PEM certificate chain to serve instead of the generated one. */
        certFile: z.string().min(1).optional(),
        /** PEM private key belonging to `certFile`. */
        keyFile: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
    tftp: z
      .object({
        enabled: z.boolean().default(true),
        port: z.number().int().min(0).max(65535).default(6969),
        /** Who sends firmware blocks: the native pump when built (`auto`) or the event loop. @default 'auto' */
        pump: z.enum(['auto', 'javascript']).default('auto'),
      })
      .strict()
      .prefault({}),
    dhcp: z
      .object({
        /** Run the built-in DHCPv4 server for the sites that switch it on. @default false */
        enabled: z.boolean().default(false),
        /** UDP port (67 for real clients; needs CAP_NET_BIND_SERVICE). @default 67 */
        port: z.number().int().min(0).max(65535).default(67),
        /** Interface of the served segment; its IPv4 address becomes the server identifier. */
        interface: z.string().min(1).max(64).optional(),
        /** This server's IPv4 address on the served segment (instead of `interface`). */
        address: z.ipv4().optional(),
        /** How long a declined address is set aside. @default 3600 */
        declineSeconds: z.number().int().min(1).max(30 * 86400).default(3600),
      })
      .strict()
      .prefault({}),
    provisioning: z
      .object({
        /** Slug of a tenant also served at `/` (single-tenant mode), for phones that cannot take a path. */
        defaultTenant: z.string().min(1).max(63).optional(),
        /** Grace period in which the old provisioning password still works after a rotation. @default 604800 */
        rotationGraceSeconds: z.number().int().min(0).max(90 * 86400).default(7 * 86400),
      })
      .strict()
      .prefault({}),
    backup: z
      .object({
        /** Take a backup every day. @default true */
        enabled: z.boolean().default(true),
        /** When, as HH:MM in UTC. @default "03:00" */
        time: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'HH:MM, 00:00 to 23:59').default('03:00'),
        /** How many backups to keep. @default 14 */
        keep: z.number().int().min(1).max(3650).default(14),
        /** Folder for backups. @default "<dataDir>/backups" */
        dir: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
    mail: z
      .object({
        /** SMTP server, e.g. `smtp://user@mail.example:587` (STARTTLS when offered) or `smtps://…:465`. Unset: mail goes to the outbox. */
        smtpUrl: z.url({ protocol: /^smtps?$/ }).optional(),
        /** Password for the SMTP user (kept out of the URL so it is masked everywhere). */
        smtpPassword: z.string().min(1).max(500).optional(),
        /** Sender of account mail. @default "edgeprov <edgeprov@localhost>" */
        from: z.string().min(3).max(300).default('edgeprov <edgeprov@localhost>'),
        /** Folder mail is written to when no SMTP server is configured. @default "<dataDir>/outbox" */
        outboxDir: z.string().min(1).optional(),
        /** Base of the links in account mail (behind a reverse proxy). Empty: this server's HTTPS (else HTTP) URL. */
        linkBaseUrl: z.url({ protocol: /^https?$/ }).optional(),
      })
      .strict()
      .prefault({}),
    firmware: z
      .object({
        /** Largest firmware image accepted (a whole UC bundle can be hundreds of MB). @default 1073741824 */
        maxImageBytes: z.number().int().min(1024).max(16 * 1024 ** 3).default(1024 ** 3),
        /** Firmware downloads at once (HTTP and TFTP); beyond it phones are told to retry later. @default 100 */
        maxConcurrent: z.number().int().min(1).max(100_000).default(100),
        /** Firmware downloads at once per site (by the phone's subnet). @default 25 */
        maxPerSite: z.number().int().min(1).max(100_000).default(25),
      })
      .strict()
      .prefault({}),
    retention: z
      .object({
        /** Days between a tenant's deletion request and its purge. @default 30 */
        deletionGraceDays: z.number().int().min(0).max(365).default(30),
        /** Days a tenant is kept after its subscription ended, then purged. @default 365 */
        subscriptionRetentionDays: z.number().int().min(0).max(3650).default(365),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .prefault({}),
    api: z
      .object({
        /** Largest admin API request body. @default 1048576 */
        maxBodyBytes: z.number().int().min(1024).max(1024 ** 3).default(1024 * 1024),
        /** Lifetime of a token from `POST /api/v1/auth/token`. @default 43200 */
        sessionTtlSeconds: z.number().int().min(60).max(30 * 86400).default(12 * 3600),
        /** Largest page a list returns. @default 500 */
        maxPageSize: z.number().int().min(1).max(10000).default(500),
      })
      .strict()
      .prefault({}),
    auth: z
      .object({
        /** scrypt cost N (a power of two) for new password hashes; old hashes keep theirs. @default 32768 */
        scryptCost: z
          .number()
          .int()
          .min(1024)
          .max(2 ** 20)
          .refine((n) => (n & (n - 1)) === 0, 'must be a power of two')
          .default(32768),
        /** Failed sign-ins allowed per account and per source address in the window. @default 10 */
        maxFailures: z.number().int().min(1).max(1000).default(10),
        /** Window and lockout length for failed sign-ins. @default 900 */
        lockoutSeconds: z.number().int().min(1).max(86400).default(900),
        /** How long an invitation (activation link) stays valid. @default 72 */
        activationHours: z.number().int().min(1).max(30 * 24).default(72),
        /** How long a password-reset link stays valid. @default 60 */
        resetMinutes: z.number().int().min(5).max(24 * 60).default(60),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type Config = Readonly<z.infer<typeof configSchema>>;

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type LeafKind = 'string' | 'number' | 'boolean' | 'array' | 'enum';
interface Leaf {
  path: string[];
  kind: LeafKind;
  env: string;
  flag: string;
}

interface ZodDefLike {
  type: string;
  innerType?: z.ZodType;
  shape?: Record<string, z.ZodType>;
}
const defOf = (s: z.ZodType): ZodDefLike => (s as unknown as { _zod: { def: ZodDefLike } })._zod.def;

function unwrap(s: z.ZodType): z.ZodType {
  let cur = s;
  for (;;) {
    const def = defOf(cur);
    if (def.innerType && ['default', 'prefault', 'optional', 'nullable', 'readonly'].includes(def.type)) {
      cur = def.innerType;
      continue;
    }
    return cur;
  }
}

const snake = (s: string): string => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
const kebab = (s: string): string => s.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();

function collectLeaves(schema: z.ZodType, prefix: string[] = []): Leaf[] {
  const inner = unwrap(schema);
  const def = defOf(inner);
  if (def.type === 'object') {
    const shape = (inner as z.ZodObject).shape as Record<string, z.ZodType>;
    return Object.entries(shape).flatMap(([k, v]) => collectLeaves(v, [...prefix, k]));
  }
  const kind: LeafKind =
    def.type === 'number' || def.type === 'boolean' || def.type === 'array' || def.type === 'enum'
      ? def.type
      : 'string';
  return [
    {
      path: prefix,
      kind,
      env: `EDGEPROV_${prefix.map(snake).join('_')}`,
      flag: prefix.map(kebab).join('-'),
    },
  ];
}

/** Every settable leaf of the schema, with its environment variable and CLI flag. */
export const CONFIG_LEAVES: readonly Leaf[] = collectLeaves(configSchema);

/** Environment variables that are not configuration leaves but are still ours. */
const OTHER_ENV = new Set(['EDGEPROV_CONFIG', 'EDGEPROV_TEST_STRICT']);

function coerce(kind: LeafKind, raw: string): unknown {
  const v = raw.trim();
  switch (kind) {
    case 'number':
      return v !== '' && Number.isFinite(Number(v)) ? Number(v) : raw;
    case 'boolean':
      if (['1', 'true', 'yes', 'on'].includes(v.toLowerCase())) return true;
      if (['0', 'false', 'no', 'off'].includes(v.toLowerCase())) return false;
      return raw;
    case 'array':
      return v === '' ? [] : v.split(',').map((x) => x.trim());
    default:
      return raw;
  }
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = target;
  for (const key of path.slice(0, -1)) {
    const next = cur[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) cur[key] = {};
    cur = cur[key] as Record<string, unknown>;
  }
  cur[path[path.length - 1] as string] = value;
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? deepMerge(b as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

export interface ConfigSources {
  /** Config flags as given on the command line, by flag name without dashes (`http-port`). */
  flags?: Record<string, string>;
  env?: Record<string, string | undefined>;
  /** Path of a JSON config file; overrides `EDGEPROV_CONFIG`. */
  file?: string;
  cwd?: string;
  /** Called for each unknown `EDGEPROV_*` variable. */
  warn?: (message: string) => void;
}

/** Parses and freezes the configuration; throws {@link ConfigError} listing every problem. */
export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? {};
  const cwd = sources.cwd ?? process.cwd();
  const problems: string[] = [];
  const origin = new Map<string, string>();
  let merged: Record<string, unknown> = {};

  const file = sources.file ?? env.EDGEPROV_CONFIG;
  if (file) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(resolve(cwd, file), 'utf8'));
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
        problems.push(`${file}: must hold a JSON object`);
      } else {
        merged = deepMerge(merged, parsed as Record<string, unknown>);
        for (const leaf of CONFIG_LEAVES) origin.set(leaf.path.join('.'), file);
      }
    } catch (err) {
      problems.push(`${file}: ${(err as Error).message}`);
    }
  }

  const byEnv = new Map(CONFIG_LEAVES.map((l) => [l.env, l]));
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('EDGEPROV_') || raw === undefined) continue;
    const leaf = byEnv.get(name);
    if (!leaf) {
      if (!OTHER_ENV.has(name) && !name.startsWith('EDGEPROV_INIT_')) {
        sources.warn?.(`unknown environment variable ${name} ignored`);
      }
      continue;
    }
    setPath(merged, leaf.path, coerce(leaf.kind, raw));
    origin.set(leaf.path.join('.'), name);
  }

  const byFlag = new Map(CONFIG_LEAVES.map((l) => [l.flag, l]));
  for (const [flag, raw] of Object.entries(sources.flags ?? {})) {
    const leaf = byFlag.get(flag);
    if (!leaf) {
      problems.push(`--${flag}: unknown option`);
      continue;
    }
    setPath(merged, leaf.path, coerce(leaf.kind, raw));
    origin.set(leaf.path.join('.'), `--${flag}`);
  }

  const result = configSchema.safeParse(merged);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const path = issue.path.join('.');
      const from = origin.get(path);
      problems.push(`${path || '(root)'}: ${issue.message}${from ? ` (from ${from})` : ''}`);
    }
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);

  const cfg = { ...result.data, dataDir: resolve(cwd, result.data.dataDir) };
  return deepFreeze(cfg);
}

const SECRET_KEY = /(password|secret|token|masterKey|apiKey)$/i;

/** A copy of the configuration fit to print: secrets replaced by `"***"`. */
export function maskConfig(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => maskConfig(v));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskConfig(v, k)]));
  }
  if (SECRET_KEY.test(key) && value !== undefined && value !== '') return '***';
  // A password written into a URL anyway is masked too.
  if (/Url$/.test(key) && typeof value === 'string') return value.replace(/^([a-z]+:\/\/[^:/@]*):[^@/]*@/i, '$1:***@');
  return value;
}
