import { createHash } from 'node:crypto';
import { XMLValidator } from 'fast-xml-parser';
import type { Clock } from '../clock.ts';
import { AppError } from '../errors.ts';
import type { Inventory } from '../domain/inventory.ts';
import { cidrContains, parseCidr, type Cidr } from '../domain/net.ts';
import type { Device, Group, LastSeen, Profile, Site, Tenant } from '../domain/types.ts';
import type { Logger } from '../logger.ts';
import type { ParamCatalogue } from '../profiles/catalogue.ts';
import {
  BOOTSTRAP_FILE,
  DEFAULTS_FILE,
  RenderError,
  deviceFileName,
  masterXml,
  renderBootstrap,
  renderDefaults,
  renderDevice,
  type DeviceRender,
  type MasterInput,
  type RenderInput,
  type ServerInfo,
} from '../profiles/render.ts';
import type { Store, TenantRow } from '../store/store.ts';
import { DependencyCache } from './cache.ts';
import { PHONE_FILES, UPLOAD_DIRS, parseName, type FileRef, type PhoneFileKind } from './names.ts';
import type { UploadStore } from './uploads.ts';
import { parseUserAgent } from './useragent.ts';
import { CappedMap } from '../capped-map.ts';

/** Who is asking, as the protocol adapter established it. */
export interface Requester {
  tenant: Tenant;
  ip: string;
  userAgent: string | undefined;
  protocol: 'http' | 'https' | 'tftp';
  /** What the credentials proved: the tenant's provisioning account, one device's own, or nothing (TFTP). */
  auth: { kind: 'tenant' } | { kind: 'device'; mac: string } | { kind: 'none' };
}

export interface Served {
  body: Buffer;
  etag: string;
  contentType: string;
}

/** A file served from disk (firmware): streamed, with ranges. */
export interface Blob {
  path: string;
  size: number;
  etag: string;
  contentType: string;
}

export type ReadResult =
  | ({ kind: 'file' } & Served)
  | ({ kind: 'blob' } & Blob)
  | { kind: 'not_found' }
  | { kind: 'unavailable'; retryAfterSeconds: number; reason: string };

export type WriteResult =
  | { kind: 'stored' }
  | { kind: 'not_found' }
  | { kind: 'not_allowed' }
  | { kind: 'too_large'; maxBytes: number }
  | { kind: 'bad'; message: string };

/** Firmware the master file should point a device at, given what it runs now; the firmware module fills this in. */
export type FirmwarePlan = (tenant: Tenant, device: Device, running: string | null) => Pick<MasterInput, 'appFilePath' | 'models'>;

/** Finds the image for a firmware name (`fw/<version>/<part>.sip.ld`; no version: the tenant's assignment). */
export type FirmwareFiles = (tenant: Tenant, version: string | null, part: string | null) => Promise<Blob | undefined>;

export interface TreeDeps {
  store: Store;
  inventory: Inventory;
  catalogue: ParamCatalogue;
  uploads: UploadStore;
  clock: Clock;
  logger: Logger;
  server: (tenant: Tenant) => ServerInfo;
  caPem: () => string | undefined;
  firmware?: FirmwarePlan;
  firmwareFiles?: FirmwareFiles;
  /** Rendered devices kept in memory. @default 50000 */
  cacheSize?: number;
  /** How often batched last-seen updates are written. @default 2000 */
  seenFlushMs?: number;
}

interface DeviceEntry {
  device: Device;
  master?: Served;
  /** The firmware plan the master was built with; a different plan rebuilds it. */
  planKey?: string;
  files: Map<string, Served>;
  /** Why the current render failed (the files are then the last good ones, or absent). */
  failed?: string;
}

export const etagOf = (body: Buffer | string): string => `"${createHash('sha256').update(body).digest('base64url').slice(0, 32)}"`;

const served = (body: string | Buffer, contentType = 'application/xml'): Served => {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return { body: b, etag: etagOf(b), contentType };
};

const DIRECTORIES: MasterInput['directories'] = {
  log: UPLOAD_DIRS.log,
  overrides: UPLOAD_DIRS.overrides,
  contacts: UPLOAD_DIRS.contacts,
  callLists: UPLOAD_DIRS.callLists,
  license: '',
  userProfiles: '',
};

/** Last-seen updates written per transaction. */
const SEEN_SLICE = 250;

/** An unchanged sighting (same address and User-Agent) is recorded at most this often. */
const SEEN_REFRESH_MS = 60_000;

/** Retry-After for a phone whose config has never rendered: long enough to fix the template. */
const RENDER_RETRY_SECONDS = 300;

/**
 * The one virtual file tree a phone sees, whatever protocol it speaks: which names exist for a
 * requester, what they contain (rendered, cached, or uploaded), and which uploads are accepted.
 */
export class ProvisioningTree {
  readonly #cache: DependencyCache<DeviceEntry>;
  readonly #shared: DependencyCache<Served>;
  readonly #layers = new DependencyCache<{ value: Site | Group | Profile | undefined }>(10_000);
  readonly #inflight = new Map<string, Promise<DeviceEntry | undefined>>();
  readonly #seen = new Map<string, { tenantId: string; id: string; lastSeen: LastSeen }>();
  /** What was last written per device, so an unchanged sighting is written at most once a minute. */
  readonly #persisted = new CappedMap<string, { atMs: number; key: string }>(200_000);
  readonly #timer: NodeJS.Timeout;
  readonly #unsubscribe: () => void;
  readonly #tenants = new CappedMap<string, { tenant: Tenant; secrets: TenantRow } | null>(10_000);
  #subnets: Promise<Array<{ cidr: Cidr; tenant: Tenant; siteId: string }>> | undefined;
  readonly #bootstrapMaster = served(masterXml({ configFiles: [BOOTSTRAP_FILE], directories: DIRECTORIES }));
  readonly #bootstrap = served(renderBootstrap());
  #flushing: Promise<void> = Promise.resolve();

  constructor(private readonly deps: TreeDeps) {
    this.#cache = new DependencyCache(deps.cacheSize ?? 50_000);
    this.#shared = new DependencyCache(10_000);
    this.#unsubscribe = deps.inventory.onChange(({ kind, id }) => {
      this.#cache.invalidate(`${kind}:${id}`);
      this.#shared.invalidate(`${kind}:${id}`);
      this.#layers.invalidate(`${kind}:${id}`);
      if (kind === 'tenant') this.#tenants.clear();
      if (kind === 'tenant' || kind === 'site') this.#subnets = undefined;
    });
    this.#timer = setInterval(() => void this.flushSeen(), deps.seenFlushMs ?? 2000);
    this.#timer.unref();
  }

  /** {@link tenantByKey} when the answer is in memory (`null`: known not to exist), else `undefined`. */
  tenantByKeyCached(key: string): { tenant: Tenant; secrets: TenantRow } | null | undefined {
    return this.#tenants.get(key);
  }

  /** A tenant by its provisioning key, with the secrets phones authenticate against (cached). */
  async tenantByKey(key: string): Promise<{ tenant: Tenant; secrets: TenantRow } | undefined> {
    if (!/^[A-Za-z0-9_-]{8,64}$/.test(key)) return undefined;
    let hit = this.#tenants.get(key);
    if (hit === undefined) {
      const tenant = await this.deps.store.tenants.getByProvisioningKey(key);
      const secrets = tenant ? await this.deps.store.tenants.getWithSecrets(tenant.id) : undefined;
      hit = tenant && secrets ? { tenant, secrets } : null;
      this.#tenants.set(key, hit);
    }
    return hit ?? undefined;
  }

  /**
   * The tenant whose site subnet holds `ip` (TFTP carries no credentials); the most specific
   * subnet wins when tenants overlap.
   */
  async tenantForAddress(ip: string): Promise<Tenant | undefined> {
    this.#subnets ??= (async () => {
      const out: Array<{ cidr: Cidr; tenant: Tenant; siteId: string }> = [];
      for (const tenant of (await this.deps.store.tenants.list({ limit: 1_000_000, offset: 0 })).items) {
        for (const site of await this.deps.store.sites.all(tenant.id)) {
          for (const s of site.subnets) {
            const cidr = parseCidr(s);
            if (cidr) out.push({ cidr, tenant, siteId: site.id });
          }
        }
      }
      return out.sort((a, b) => b.cidr.prefix - a.cidr.prefix);
    })();
    return (await this.#subnets).find((e) => cidrContains(e.cidr, ip))?.tenant;
  }

  /** The site of a tenant whose subnet holds `ip` (firmware storm control counts per site). */
  async siteForAddress(tenantId: string, ip: string): Promise<string | undefined> {
    await this.tenantForAddress(ip);
    return (await this.#subnets)?.find((e) => e.tenant.id === tenantId && cidrContains(e.cidr, ip))?.siteId;
  }

  /** A device's own provisioning credentials, if it has any. */
  async deviceCredentials(tenantId: string, mac: string): Promise<{ username: string; password: string } | null> {
    const cached = this.#cache.get(`${tenantId}/${mac}`);
    const device = cached?.device ?? (await this.deps.store.devices.getByMac(tenantId, mac));
    return device?.credentials ?? null;
  }

  /** Whether a name is one a phone may PUT, and the most bytes it may send. */
  uploadLimit(path: string): { maxBytes: number } | undefined {
    const ref = parseName(path);
    return ref?.kind === 'phone-file' ? { maxBytes: PHONE_FILES[ref.file].maxBytes } : undefined;
  }

  async read(req: Requester, path: string, ref: FileRef | undefined = parseName(path)): Promise<ReadResult> {
    if (!ref) return { kind: 'not_found' };
    // Also the access check: a name this requester may not touch is answered not_found there.
    const quick = this.readFromMemory(req, ref);
    if (quick) return quick;
    switch (ref.kind) {
      case 'firmware': {
        const blob = await this.deps.firmwareFiles?.(req.tenant, ref.version, ref.part);
        return blob ? { kind: 'blob', ...blob } : { kind: 'not_found' };
      }
      case 'master':
      case 'device-config': {
        const entry = await this.#deviceEntry(req, ref.mac, ref.kind === 'master');
        return entry ? this.#deviceFile(req, ref, entry) : { kind: 'not_found' };
      }
      case 'phone-file': {
        if (PHONE_FILES[ref.file].append) return { kind: 'not_found' };
        const device = await this.#knownDevice(req, ref.mac);
        if (!device) return { kind: 'not_found' };
        const body = await this.deps.uploads.read(req.tenant.id, ref.mac, `${ref.mac}-${ref.file}`);
        return body ? { kind: 'file', ...served(body, 'application/xml') } : { kind: 'not_found' };
      }
      default:
        return { kind: 'not_found' };
    }
  }

  /**
   * The answer when everything it needs is in memory (the boot-storm path: no promise, no store
   * access), or `undefined` when {@link read} has to fetch or render something first.
   */
  readFromMemory(req: Requester, ref: FileRef): ReadResult | undefined {
    if (!this.#mayTouch(req, ref)) return { kind: 'not_found' };
    switch (ref.kind) {
      case 'default-master':
        return { kind: 'file', ...this.#bootstrapMaster };
      case 'bootstrap':
        return { kind: 'file', ...this.#bootstrap };
      case 'defaults':
        return { kind: 'file', ...this.#defaults(req.tenant) };
      case 'ca': {
        const pem = this.deps.caPem();
        return pem ? { kind: 'file', ...served(pem, 'application/x-x509-ca-cert') } : { kind: 'not_found' };
      }
      case 'optional':
        return { kind: 'not_found' };
      case 'master':
      case 'device-config': {
        const entry = this.#cache.get(`${req.tenant.id}/${ref.mac}`);
        if (!entry) return undefined;
        this.#noteSeen(req, entry.device);
        return entry.device.state === 'active' ? this.#deviceFile(req, ref, entry) : { kind: 'not_found' };
      }
      default:
        return undefined;
    }
  }

  /** A rendered file of an active device's entry; the master file follows the firmware plan. */
  #deviceFile(req: Requester, ref: { kind: 'master' | 'device-config'; mac: string }, entry: DeviceEntry): ReadResult {
    if (ref.kind === 'master' && entry.master && this.deps.firmware) {
      // The plan moves with rollouts, windows and what the phone runs: checked on every request.
      const agent = parseUserAgent(req.userAgent);
      const running = (agent.stage !== 'updater' ? agent.firmware : null) ?? entry.device.lastSeen?.firmware ?? null;
      const planned = this.#planned(req.tenant, entry.device, running);
      if (planned.key !== entry.planKey) Object.assign(entry, this.#masterFor(entry.device, planned));
    }
    const file = ref.kind === 'master' ? entry.master : entry.files.get(deviceFileName(ref.mac));
    if (file) return { kind: 'file', ...file };
    return { kind: 'unavailable', retryAfterSeconds: RENDER_RETRY_SECONDS, reason: entry.failed ?? 'not rendered' };
  }

  async write(req: Requester, path: string, body: Buffer): Promise<WriteResult> {
    const ref = parseName(path);
    if (!ref || !this.#mayTouch(req, ref)) return { kind: 'not_found' };
    if (ref.kind !== 'phone-file') return { kind: 'not_allowed' };
    const spec = PHONE_FILES[ref.file];
    if (body.length > spec.maxBytes) return { kind: 'too_large', maxBytes: spec.maxBytes };
    if (spec.xml) {
      const problem = checkUploadedXml(body);
      if (problem) return { kind: 'bad', message: problem };
    } else if (body.includes(0)) {
      return { kind: 'bad', message: 'a log must be text' };
    }
    const device = await this.#knownDevice(req, ref.mac);
    if (!device) return { kind: 'not_found' };
    await this.deps.uploads.write(req.tenant.id, ref.mac, ref.file as PhoneFileKind, body);
    this.#noteSeen(req, device);
    return { kind: 'stored' };
  }

  /** Every file the phone would receive right now, rendered fresh; errors are reported, not thrown. */
  async preview(tenant: Tenant, device: Device): Promise<{ files: Array<{ name: string; contentType: string; body: string }>; warnings: string[]; errors: string[] }> {
    try {
      const { master, render } = await this.#render(tenant, device);
      const files = [
        { name: `${device.mac}.cfg`, contentType: 'application/xml', body: master.body.toString('utf8') },
        ...render.files.map((f) => ({ name: f.name, contentType: f.contentType, body: f.body })),
      ];
      // A fresh render is news about the device: a fixed template clears the error it shows.
      if (device.renderError) await this.deps.store.devices.setRenderError(tenant.id, device.id, null);
      for (const kind of ['phone.cfg', 'web.cfg', 'directory.xml', 'calls.xml'] as const) {
        const b = await this.deps.uploads.read(tenant.id, device.mac, `${device.mac}-${kind}`);
        if (b) files.push({ name: `${device.mac}-${kind}`, contentType: 'application/xml', body: b.toString('utf8') });
      }
      return { files, warnings: render.warnings, errors: [] };
    } catch (err) {
      if (!(err instanceof RenderError)) throw err;
      if (device.renderError?.message !== err.message) {
        await this.deps.store.devices.setRenderError(tenant.id, device.id, { at: this.deps.clock.now().toISOString(), message: err.message, problems: err.problems });
      }
      return { files: [], warnings: [], errors: err.problems };
    }
  }

  async explain(tenant: Tenant, device: Device): Promise<DeviceRender['explain']> {
    try {
      return (await this.#render(tenant, device)).render.explain;
    } catch (err) {
      if (err instanceof RenderError) {
        throw new AppError('validation_failed', 'the device configuration does not render', {
          details: err.problems.map((message) => ({ path: '', message })),
        });
      }
      throw err;
    }
  }

  /** Writes the batched last-seen updates. */
  flushSeen(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      if (this.#seen.size === 0) return;
      const batch = [...this.#seen.values()];
      this.#seen.clear();
      // In slices, the event loop free between them: the embedded store works synchronously, and
      // 5,000 first sightings written at once held every phone's answer back by a tenth of a second.
      for (let i = 0; i < batch.length; i += SEEN_SLICE) {
        if (i > 0) await new Promise((r) => setImmediate(r));
        const slice = batch.slice(i, i + SEEN_SLICE);
        try {
          await this.deps.store.transaction((tx) => tx.devices.recordSeen(slice));
        } catch (err) {
          this.deps.logger.warn({ err }, 'could not record last-seen updates');
        }
      }
    });
    return this.#flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#unsubscribe();
    await this.flushSeen();
  }

  #mayTouch(req: Requester, ref: FileRef): boolean {
    if (req.auth.kind !== 'device') return true;
    return !('mac' in ref) || ref.mac === null || ref.mac === req.auth.mac;
  }

  #defaults(tenant: Tenant): Served {
    const key = `defaults/${tenant.id}`;
    let s = this.#shared.get(key);
    if (!s) {
      s = served(renderDefaults(tenant, this.deps.server(tenant)));
      this.#shared.set(key, s, [`tenant:${tenant.id}`]);
    }
    return s;
  }

  #noteSeen(req: Requester, device: Device): void {
    const nowMs = this.deps.clock.now().getTime();
    const key = `${req.ip}|${req.userAgent ?? ''}`;
    const last = this.#persisted.get(device.id);
    if (last && last.key === key && nowMs - last.atMs < SEEN_REFRESH_MS) return;
    this.#persisted.set(device.id, { atMs: nowMs, key });
    const agent = parseUserAgent(req.userAgent);
    this.#seen.set(device.id, {
      tenantId: device.tenantId,
      id: device.id,
      lastSeen: {
        at: this.deps.clock.now().toISOString(),
        ip: req.ip || null,
        userAgent: req.userAgent?.slice(0, 512) ?? null,
        // Updater-stage requests carry the updater's version, not the application's.
        firmware: agent.stage === 'updater' ? (device.lastSeen?.firmware ?? null) : (agent.firmware ?? device.lastSeen?.firmware ?? null),
      },
    });
  }

  /** A device of the tenant that may use the upload and override files (pending or active). */
  async #knownDevice(req: Requester, mac: string): Promise<Device | undefined> {
    const cached = this.#cache.get(`${req.tenant.id}/${mac}`);
    const device = cached?.device ?? (await this.deps.store.devices.getByMac(req.tenant.id, mac));
    return device && device.state !== 'disabled' ? device : undefined;
  }

  async #deviceEntry(req: Requester, mac: string, mayClaim: boolean): Promise<DeviceEntry | undefined> {
    const key = `${req.tenant.id}/${mac}`;
    let entry = this.#cache.get(key);
    if (!entry) {
      let p = this.#inflight.get(key);
      if (!p) {
        p = this.#load(req, mac, mayClaim).finally(() => this.#inflight.delete(key));
        this.#inflight.set(key, p);
      }
      entry = await p;
    }
    if (!entry) return undefined;
    this.#noteSeen(req, entry.device);
    return entry.device.state === 'active' ? entry : undefined;
  }

  async #load(req: Requester, mac: string, mayClaim: boolean): Promise<DeviceEntry | undefined> {
    const { store } = this.deps;
    let device = await store.devices.getByMac(req.tenant.id, mac);
    if (!device) {
      if (!mayClaim) return undefined;
      device = await this.#unknownPhone(req, mac);
      if (!device) return undefined;
    }
    const key = `${req.tenant.id}/${mac}`;
    const deps = [`device:${device.id}`, `tenant:${req.tenant.id}`];
    if (device.state !== 'active') {
      const entry: DeviceEntry = { device, files: new Map() };
      this.#cache.set(key, entry, deps);
      return entry;
    }
    const entry = await this.#renderEntry(req.tenant, device, deps);
    this.#cache.set(key, entry, deps);
    return entry;
  }

  /**
   * A site, group or profile a render uses, kept until it or its tenant changes: a storm renders
   * thousands of devices from the same few layers. Kept objects are frozen (renders only read them).
   */
  async #layer<T extends Site | Group | Profile>(kind: 'site' | 'group' | 'profile', tenantId: string, id: string, load: () => Promise<T | undefined>): Promise<T | undefined> {
    const key = `${kind}/${tenantId}/${id}`;
    const hit = this.#layers.get(key);
    if (hit) return hit.value as T | undefined;
    const value = await load();
    if (value) {
      Object.freeze(value);
      if ('params' in value) Object.freeze(value.params);
    }
    this.#layers.set(key, { value }, [`${kind}:${id}`, `tenant:${tenantId}`]);
    return value;
  }

  async #gather(tenant: Tenant, device: Device): Promise<{ input: RenderInput; deps: string[] }> {
    const { store } = this.deps;
    const t = tenant.id;
    const site: Site | null = device.siteId ? ((await this.#layer('site', t, device.siteId, () => store.sites.get(t, device.siteId as string))) ?? null) : null;
    const groups: Group[] = [];
    for (const gid of device.groupIds) {
      const g = await this.#layer('group', t, gid, () => store.groups.get(t, gid));
      if (g) groups.push(g);
    }
    const ids = new Set([...tenant.profileIds, ...(site?.profileIds ?? []), ...groups.flatMap((g) => g.profileIds), ...device.profileIds]);
    const profiles = new Map<string, Profile>();
    for (const id of ids) {
      const p = await this.#layer('profile', t, id, () => store.profiles.get(t, id));
      if (p) profiles.set(id, p);
    }
    const deps = [
      ...(site ? [`site:${site.id}`] : []),
      ...groups.map((g) => `group:${g.id}`),
      ...[...ids].map((id) => `profile:${id}`),
    ];
    return { input: { tenant, site, groups, device, profiles, server: this.deps.server(tenant) }, deps };
  }

  async #render(tenant: Tenant, device: Device): Promise<{ master: Served; planKey: string; render: DeviceRender; deps: string[] }> {
    const { input, deps } = await this.#gather(tenant, device);
    const render = renderDevice(input, this.deps.catalogue);
    return { ...this.#masterFor(device, this.#planned(tenant, device, device.lastSeen?.firmware ?? null)), render, deps };
  }

  /** The firmware plan for a device running `running`, with a key that tells plans apart. */
  #planned(tenant: Tenant, device: Device, running: string | null): { plan: Pick<MasterInput, 'appFilePath' | 'models'>; key: string } {
    const plan = this.deps.firmware?.(tenant, device, running) ?? {};
    return { plan, key: JSON.stringify(plan) };
  }

  #masterFor(device: Device, planned: { plan: Pick<MasterInput, 'appFilePath' | 'models'>; key: string }): { master: Served; planKey: string } {
    const master = served(masterXml({ configFiles: [deviceFileName(device.mac), DEFAULTS_FILE], directories: DIRECTORIES, ...planned.plan }));
    return { master, planKey: planned.key };
  }

  /**
   * Renders a device; on failure records the error on the device and falls back to the last good
   * files, so a phone never receives a half-rendered or broken config.
   */
  async #renderEntry(tenant: Tenant, device: Device, baseDeps: string[]): Promise<DeviceEntry> {
    const { store, logger } = this.deps;
    const name = deviceFileName(device.mac);
    try {
      const { master, planKey, render, deps } = await this.#render(tenant, device);
      baseDeps.push(...deps);
      const file = render.files.find((f) => f.name === name);
      const s = served(file?.body ?? '');
      const lastGood = await store.rendered.get(tenant.id, device.id, name);
      if (lastGood?.etag !== s.etag) {
        await store.rendered.put(tenant.id, device.id, { name, body: s.body.toString('utf8'), etag: s.etag, renderedAt: this.deps.clock.now().toISOString() });
      }
      if (device.renderError) await store.devices.setRenderError(tenant.id, device.id, null);
      return { device, master, planKey, files: new Map([[name, s]]) };
    } catch (err) {
      if (!(err instanceof RenderError)) throw err;
      const { deps } = await this.#gather(tenant, device);
      baseDeps.push(...deps);
      if (device.renderError?.message !== err.message) {
        await store.devices.setRenderError(tenant.id, device.id, { at: this.deps.clock.now().toISOString(), message: err.message, problems: err.problems });
        logger.warn({ tenant: tenant.slug, mac: device.mac, problems: err.problems }, 'render failed; serving the last good config');
      }
      const lastGood = await store.rendered.get(tenant.id, device.id, name);
      if (!lastGood) return { device, files: new Map(), failed: err.message };
      const { master, planKey } = this.#masterFor(device, this.#planned(tenant, device, device.lastSeen?.firmware ?? null));
      return { device, master, planKey, files: new Map([[name, served(lastGood.body)]]), failed: err.message };
    }
  }

  /** A MAC the tenant does not know: recorded as pending, or claimed when the tenant allows it. */
  async #unknownPhone(req: Requester, mac: string): Promise<Device | undefined> {
    const { inventory, store, logger } = this.deps;
    const agent = parseUserAgent(req.userAgent);
    const mode = req.tenant.settings.autoClaim;
    let site: Site | undefined;
    if (mode !== 'off' && req.ip) {
      site = (await store.sites.all(req.tenant.id)).find((s) =>
        s.subnets.some((c) => {
          const cidr = parseCidr(c);
          return cidr !== undefined && cidrContains(cidr, req.ip);
        }),
      );
    }
    const claim = mode === 'any' || (mode === 'site-subnets' && site !== undefined);
    try {
      const d = await inventory.createDevice(req.tenant.id, {
        mac,
        ...(agent.model && { model: agent.model }),
        state: claim ? 'active' : 'pending',
        ...(claim && site && { siteId: site.id }),
      });
      logger.info({ tenant: req.tenant.slug, mac, ip: req.ip, model: agent.model, claimed: claim, site: site?.name }, claim ? 'new phone claimed' : 'new phone recorded as pending');
      return d;
    } catch (err) {
      // Another request for the same phone got there first, or the MAC belongs to another tenant.
      if (err instanceof AppError && err.code === 'conflict') return store.devices.getByMac(req.tenant.id, mac);
      throw err;
    }
  }
}

/** Uploaded XML must be well-formed and carry no DOCTYPE (no entity expansion, no XML bombs). */
export function checkUploadedXml(body: Buffer): string | undefined {
  let text = body.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) return 'DOCTYPE and entity declarations are not accepted';
  const v = XMLValidator.validate(text);
  return v === true ? undefined : `not well-formed XML: ${v.err.msg} (line ${v.err.line})`;
}
