import { createHash, randomUUID } from 'node:crypto';
import type { Clock } from '../clock.ts';
import { timeZoneSchema } from '../domain/schemas.ts';
import type { Device, FirmwareAssignment, FirmwareRollout, FirmwareTargetKind, Tenant } from '../domain/types.ts';
import { conflict, invalid, notFound } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Store } from '../store/store.ts';
import type { FirmwareCatalogue } from './catalogue.ts';

/**
 * Which image each device should run: assignments (tenant, site, group, device; per model or for
 * all; the most specific wins) and staged rollouts (canary group or share first, then everyone;
 * a daily maintenance window; pause, resume, abort). `plan()` is synchronous and in memory: the
 * master file asks it on every request, so a window opening moves phones without any cache to
 * clear. A device outside the window, or in a paused rollout, stays pointed at what it runs now.
 */

export interface PlannerOptions {
  store: Store;
  catalogue: FirmwareCatalogue;
  clock: Clock;
  logger: Logger;
}

export interface RolloutInput {
  version: string;
  model?: string | null | undefined;
  target: { kind: 'tenant' | 'site' | 'group'; id?: string | undefined };
  canary?: { groupId: string } | { percent: number } | null | undefined;
  window?: { start: string; end: string; timeZone: string } | null | undefined;
}

export interface RolloutProgress {
  model: string;
  /** Devices of this model in the target. */
  devices: number;
  /** Reporting the target version in their User-Agent. */
  onTarget: number;
  /** Pointed at the target version right now. */
  pointed: number;
}

const SPECIFICITY: Record<FirmwareTargetKind, number> = { device: 4, group: 3, site: 2, tenant: 1 };
const HHMM = /^([01]\d|2[0-3]):[0-5]\d$/;
const LIVE = new Set(['canary', 'all', 'paused']);

/** Whether a phone reporting `firmware` runs `version` (phones add a build number: 6.4.3.5018). */
export const runs = (firmware: string | null | undefined, version: string): boolean =>
  !!firmware && (firmware === version || firmware.startsWith(`${version}.`) || version.startsWith(`${firmware}.`));

export class FirmwarePlanner {
  #assignments = new Map<string, FirmwareAssignment[]>();
  #rollouts = new Map<string, FirmwareRollout[]>();

  constructor(private readonly o: PlannerOptions) {}

  async load(): Promise<void> {
    this.#assignments.clear();
    this.#rollouts.clear();
    for (const a of await this.o.store.firmware.assignments()) this.#assignments.set(a.tenantId, [...(this.#assignments.get(a.tenantId) ?? []), a]);
    for (const r of await this.o.store.firmware.rollouts()) this.#rollouts.set(r.tenantId, [...(this.#rollouts.get(r.tenantId) ?? []), r]);
  }

  async #reload(tenantId: string): Promise<void> {
    this.#assignments.set(tenantId, await this.o.store.firmware.assignments(tenantId));
    this.#rollouts.set(tenantId, await this.o.store.firmware.rollouts(tenantId));
  }

  // ---- the plan ------------------------------------------------------------------------------

  /** The version assignments give this device (most specific target, exact model before any). */
  assigned(tenantId: string, device: Pick<Device, 'id' | 'siteId' | 'groupIds' | 'model'>): string | undefined {
    let best: FirmwareAssignment | undefined;
    let bestScore = -1;
    for (const a of this.#assignments.get(tenantId) ?? []) {
      const hit =
        a.targetKind === 'tenant' ||
        (a.targetKind === 'site' && a.targetId === device.siteId) ||
        (a.targetKind === 'group' && device.groupIds.includes(a.targetId)) ||
        (a.targetKind === 'device' && a.targetId === device.id);
      if (!hit) continue;
      if (a.model !== null && a.model.toUpperCase() !== device.model?.toUpperCase()) continue;
      const score = SPECIFICITY[a.targetKind] * 2 + (a.model !== null ? 1 : 0);
      if (score > bestScore) {
        best = a;
        bestScore = score;
      }
    }
    return best?.version;
  }

  #inTarget(r: FirmwareRollout, d: Pick<Device, 'siteId' | 'groupIds' | 'model'>): boolean {
    if (r.model !== null && r.model.toUpperCase() !== d.model?.toUpperCase()) return false;
    if (r.target.kind === 'site') return d.siteId === r.target.id;
    if (r.target.kind === 'group') return d.groupIds.includes(r.target.id);
    return true;
  }

  #inCanary(r: FirmwareRollout, d: Pick<Device, 'mac' | 'groupIds'>): boolean {
    if (!r.canary) return true;
    if ('groupId' in r.canary) return d.groupIds.includes(r.canary.groupId);
    const h = createHash('sha256').update(`${r.id}/${d.mac}`).digest().readUInt16BE(0);
    return h % 100 < r.canary.percent;
  }

  inWindow(r: Pick<FirmwareRollout, 'window'>, now = this.o.clock.now()): boolean {
    if (!r.window) return true;
    const hm = new Intl.DateTimeFormat('en-GB', { timeZone: r.window.timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(now);
    const { start, end } = r.window;
    return start <= end ? hm >= start && hm < end : hm >= start || hm < end;
  }

  /**
   * The version this device should run right now, or `undefined` for none (no firmware line).
   * `running` is what the phone runs (its User-Agent on this request, else its last sighting).
   */
  versionFor(tenantId: string, d: Device, running: string | null | undefined = d.lastSeen?.firmware): string | undefined {
    let version = this.assigned(tenantId, d);
    for (const r of this.#rollouts.get(tenantId) ?? []) {
      if (!LIVE.has(r.state) || !this.#inTarget(r, d)) continue;
      const already = runs(running, r.version);
      const moving = r.state !== 'paused' && this.inWindow(r) && (r.state === 'all' || this.#inCanary(r, d));
      if (moving || already) version = r.version;
    }
    return version;
  }

  /** For the master file: where this device's image lives (relative to the provisioning base). */
  plan(tenant: Tenant, device: Device, running: string | null): { appFilePath?: string } {
    const v = this.versionFor(tenant.id, device, running);
    return v ? { appFilePath: `fw/${v}/sip.ld` } : {};
  }

  // ---- assignments ---------------------------------------------------------------------------

  listAssignments(tenantId: string): FirmwareAssignment[] {
    return [...(this.#assignments.get(tenantId) ?? [])];
  }

  async #checkVersion(version: string, model: string | null): Promise<void> {
    const images = await this.o.store.firmware.images(version);
    if (images.length === 0) throw invalid([{ path: 'version', message: `no firmware version ${version} in the catalogue` }]);
    if (model && !images.some((i) => i.partNumber === null || i.models.some((m) => m.toUpperCase() === model.toUpperCase()))) {
      throw invalid([{ path: 'model', message: `version ${version} has no image for ${model}` }]);
    }
  }

  async #checkTarget(tenantId: string, kind: FirmwareTargetKind, id: string, path: string): Promise<void> {
    const s = this.o.store;
    const ok =
      kind === 'tenant'
        ? id === tenantId
        : kind === 'site'
          ? !!(await s.sites.get(tenantId, id))
          : kind === 'group'
            ? !!(await s.groups.get(tenantId, id))
            : !!(await s.devices.get(tenantId, id));
    if (!ok) throw invalid([{ path, message: `no ${kind} ${id} in this tenant` }]);
  }

  async assign(tenantId: string, input: { targetKind: FirmwareTargetKind; targetId?: string | undefined; model?: string | null | undefined; version: string }): Promise<FirmwareAssignment> {
    const targetId = input.targetKind === 'tenant' ? tenantId : (input.targetId ?? '');
    const model = input.model ?? null;
    await this.#checkTarget(tenantId, input.targetKind, targetId, 'targetId');
    await this.#checkVersion(input.version, model);
    const a: FirmwareAssignment = { tenantId, targetKind: input.targetKind, targetId, model, version: input.version, updatedAt: this.o.clock.now().toISOString() };
    await this.o.store.firmware.putAssignment(a);
    await this.#reload(tenantId);
    return a;
  }

  async unassign(tenantId: string, kind: FirmwareTargetKind, targetId: string, model: string | null): Promise<void> {
    if (!(await this.o.store.firmware.deleteAssignment(tenantId, kind, kind === 'tenant' ? tenantId : targetId, model))) throw notFound('assignment');
    await this.#reload(tenantId);
  }

  // ---- rollouts ------------------------------------------------------------------------------

  listRollouts(tenantId: string): FirmwareRollout[] {
    return [...(this.#rollouts.get(tenantId) ?? [])];
  }

  rollout(tenantId: string, id: string): FirmwareRollout {
    const r = this.#rollouts.get(tenantId)?.find((x) => x.id === id);
    if (!r) throw notFound('rollout');
    return r;
  }

  async startRollout(tenantId: string, input: RolloutInput): Promise<FirmwareRollout> {
    const model = input.model ?? null;
    const target = { kind: input.target.kind, id: input.target.kind === 'tenant' ? tenantId : (input.target.id ?? '') };
    await this.#checkVersion(input.version, model);
    await this.#checkTarget(tenantId, target.kind, target.id, 'target.id');
    const canary = input.canary ?? null;
    if (canary && 'groupId' in canary) await this.#checkTarget(tenantId, 'group', canary.groupId, 'canary.groupId');
    if (canary && 'percent' in canary && !(Number.isInteger(canary.percent) && canary.percent >= 1 && canary.percent <= 99)) {
      throw invalid([{ path: 'canary.percent', message: 'must be a whole number from 1 to 99' }]);
    }
    const w = input.window ?? null;
    if (w) {
      const issues = [];
      if (!HHMM.test(w.start)) issues.push({ path: 'window.start', message: 'must be HH:MM' });
      if (!HHMM.test(w.end)) issues.push({ path: 'window.end', message: 'must be HH:MM' });
      if (w.start === w.end) issues.push({ path: 'window.end', message: 'must differ from start' });
      if (!timeZoneSchema.safeParse(w.timeZone).success) issues.push({ path: 'window.timeZone', message: 'must be an IANA time zone' });
      if (issues.length) throw invalid(issues);
    }
    const clash = this.listRollouts(tenantId).find((r) => LIVE.has(r.state) && r.target.kind === target.kind && r.target.id === target.id && r.model === model);
    if (clash) throw conflict(`rollout ${clash.id} already moves this target; finish, abort or change it first`);
    const now = this.o.clock.now().toISOString();
    const r: FirmwareRollout = {
      id: randomUUID(),
      tenantId,
      version: input.version,
      model,
      target,
      canary,
      window: w,
      state: canary ? 'canary' : 'all',
      pausedFrom: null,
      createdAt: now,
      updatedAt: now,
    };
    await this.o.store.firmware.putRollout(r);
    await this.#reload(tenantId);
    this.o.logger.info({ tenantId, rollout: r.id, version: r.version, state: r.state }, 'firmware rollout started');
    return r;
  }

  /** pause, resume, promote (canary → all), abort (everyone back to the assignment), complete. */
  async transition(tenantId: string, id: string, action: 'pause' | 'resume' | 'promote' | 'abort' | 'complete'): Promise<FirmwareRollout> {
    const r = this.rollout(tenantId, id);
    const bad = () => conflict(`cannot ${action} a rollout that is ${r.state}`);
    let next: FirmwareRollout;
    switch (action) {
      case 'pause':
        if (r.state !== 'canary' && r.state !== 'all') throw bad();
        next = { ...r, state: 'paused', pausedFrom: r.state };
        break;
      case 'resume':
        if (r.state !== 'paused') throw bad();
        next = { ...r, state: r.pausedFrom ?? 'all', pausedFrom: null };
        break;
      case 'promote':
        if (r.state !== 'canary') throw bad();
        next = { ...r, state: 'all' };
        break;
      case 'abort':
        if (!LIVE.has(r.state)) throw bad();
        next = { ...r, state: 'aborted', pausedFrom: null };
        break;
      case 'complete': {
        if (r.state !== 'all') throw bad();
        // The target keeps the version as its assignment from now on.
        await this.o.store.firmware.putAssignment({ tenantId, targetKind: r.target.kind, targetId: r.target.id, model: r.model, version: r.version, updatedAt: this.o.clock.now().toISOString() });
        next = { ...r, state: 'done' };
        break;
      }
    }
    next = { ...next, updatedAt: this.o.clock.now().toISOString() };
    await this.o.store.firmware.putRollout(next);
    await this.#reload(tenantId);
    this.o.logger.info({ tenantId, rollout: id, action, state: next.state }, 'firmware rollout changed');
    return next;
  }

  /** Per model: devices in the target, those reporting the version, those pointed at it now. */
  async progress(tenantId: string, id: string): Promise<RolloutProgress[]> {
    const r = this.rollout(tenantId, id);
    const filter = r.target.kind === 'site' ? { siteId: r.target.id } : r.target.kind === 'group' ? { groupId: r.target.id } : {};
    const devices = (await this.o.store.devices.list(tenantId, filter, { limit: 1_000_000, offset: 0 })).items.filter((d) => d.state === 'active' && this.#inTarget(r, d));
    const by = new Map<string, RolloutProgress>();
    for (const d of devices) {
      const model = d.model ?? 'unknown';
      const p = by.get(model) ?? { model, devices: 0, onTarget: 0, pointed: 0 };
      p.devices++;
      if (runs(d.lastSeen?.firmware, r.version)) p.onTarget++;
      if (this.versionFor(tenantId, d) === r.version) p.pointed++;
      by.set(model, p);
    }
    return [...by.values()].sort((a, b) => a.model.localeCompare(b.model));
  }
}
