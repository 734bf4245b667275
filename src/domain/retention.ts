import type { Clock } from '../clock.ts';
import { conflict, invalid, notFound } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { UploadStore } from '../provisioning/uploads.ts';
import type { Store } from '../store/store.ts';
import type { Auditor } from './audit.ts';
import type { Inventory } from './inventory.ts';
import { normalizeMac } from './mac.ts';
import type { Tenant } from './types.ts';

/**
 * Retention and the right to be forgotten: tenants marked for deletion (unreachable at once,
 * purged after a grace period), tenants whose subscription ended (purged a retention period
 * later), and irreversible anonymization of a tenant or one device. Purges run from `tick()`,
 * which the server calls hourly and tests call with an injected clock. Every purge and
 * anonymization is written to the system audit trail, without the data it removed.
 */
export interface RetentionOptions {
  store: Store;
  inventory: Inventory;
  uploads: UploadStore;
  clock: Clock;
  logger: Logger;
  auditor: Auditor;
  /** @default 30 */
  deletionGraceDays: number;
  /** @default 365 */
  subscriptionRetentionDays: number;
}

const DAY = 86_400_000;

export interface Actor {
  actorId: string | null;
  actor: string;
  ip: string | null;
}

export class Retention {
  constructor(private readonly o: RetentionOptions) {}

  private now(): Date {
    return this.o.clock.now();
  }

  /** Marks the tenant for deletion: every API call, phone request and sign-in of it fails at once. */
  async markForDeletion(tenantId: string): Promise<Tenant> {
    const t = await this.o.store.tenants.get(tenantId);
    if (!t) throw notFound('tenant');
    const now = this.now();
    const deletion = { requestedAt: now.toISOString(), purgeAfter: new Date(now.getTime() + this.o.deletionGraceDays * DAY).toISOString() };
    await this.o.store.tenants.setDeletion(tenantId, deletion, now.toISOString());
    this.o.inventory.announce(tenantId, 'tenant', tenantId);
    this.o.logger.warn({ tenantId, purgeAfter: deletion.purgeAfter }, 'tenant marked for deletion');
    return { ...t, deletion };
  }

  listDeleted(): Promise<Tenant[]> {
    return this.o.store.tenants.listDeleted();
  }

  /** Takes a tenant back before its purge (system administrators). */
  async restore(tenantId: string): Promise<Tenant> {
    const t = await this.o.store.tenants.getIncludingDeleted(tenantId);
    if (!t?.deletion) throw notFound('tenant marked for deletion');
    await this.o.store.tenants.setDeletion(tenantId, null, this.now().toISOString());
    this.o.inventory.announce(tenantId, 'tenant', tenantId);
    return { ...t, deletion: null };
  }

  async setSubscriptionEnd(tenantId: string, endsAt: string | null): Promise<Tenant> {
    const t = await this.o.store.tenants.get(tenantId);
    if (!t) throw notFound('tenant');
    await this.o.store.tenants.setSubscriptionEnd(tenantId, endsAt, this.now().toISOString());
    return { ...t, subscriptionEndsAt: endsAt };
  }

  /** Purges every tenant that is due; returns what was purged. */
  async tick(): Promise<Array<{ tenantId: string; reason: 'deletion' | 'subscription' }>> {
    const now = this.now();
    const cutoff = new Date(now.getTime() - this.o.subscriptionRetentionDays * DAY).toISOString();
    const due = await this.o.store.tenants.dueForPurge(now.toISOString(), cutoff);
    const done: Array<{ tenantId: string; reason: 'deletion' | 'subscription' }> = [];
    for (const d of due) {
      try {
        await this.purge(d.id, d.reason);
        done.push({ tenantId: d.id, reason: d.reason });
      } catch (err) {
        this.o.logger.error({ err, tenantId: d.id }, 'tenant purge failed; retried at the next run');
      }
    }
    return done;
  }

  private async purge(tenantId: string, reason: 'deletion' | 'subscription'): Promise<void> {
    const rows = await this.o.store.redaction.purgeTenant(tenantId);
    await this.o.uploads.removeTenant(tenantId);
    await this.o.store.redaction.compact();
    this.o.inventory.announce(tenantId, 'tenant', tenantId);
    const removed = Object.values(rows).reduce((a, b) => a + b, 0);
    await this.o.auditor.record({
      tenantId: null,
      actorId: null,
      actor: 'system',
      ip: null,
      action: 'purgeTenant',
      target: `/tenants/${tenantId}`,
      outcome: 'success',
      before: null,
      after: { reason: reason === 'deletion' ? 'grace period after deletion request ended' : 'retention after subscription end ended', rows },
    });
    this.o.logger.warn({ tenantId, reason, removed }, 'tenant purged');
  }

  /** Irreversibly replaces the personal data of a whole tenant. `confirm` must be its slug. */
  async anonymizeTenant(tenantId: string, confirm: string, by: Actor): Promise<{ values: number; files: number }> {
    const t = await this.o.store.tenants.get(tenantId);
    if (!t) throw notFound('tenant');
    if (confirm !== t.slug) throw invalid([{ path: 'confirm', message: `must be the tenant's slug ("${t.slug}"): anonymization cannot be undone` }]);
    return this.anonymize({ tenantId }, undefined, by, `/tenants/${tenantId}`);
  }

  /** Irreversibly replaces the personal data of one device (names, lines, addresses, files). */
  async anonymizeDevice(tenantId: string, idOrMac: string, by: Actor): Promise<{ values: number; files: number }> {
    const mac = normalizeMac(idOrMac);
    const d = (mac ? await this.o.store.devices.getByMac(tenantId, mac) : undefined) ?? (await this.o.store.devices.get(tenantId, idOrMac));
    if (!d) throw notFound('device');
    if (d.state === 'pending' && d.lines.length === 0 && !d.lastSeen) throw conflict('nothing to anonymize on this device');
    return this.anonymize({ tenantId, deviceId: d.id }, d.mac, by, `/tenants/${tenantId}/devices/${d.id}`);
  }

  private async anonymize(scope: { tenantId: string; deviceId?: string }, mac: string | undefined, by: Actor, target: string) {
    const r = await this.o.store.redaction.anonymize(scope);
    const files = await this.o.uploads.rewriteAll(scope.tenantId, mac, (text) => r.text(text));
    await this.o.store.redaction.compact();
    this.o.inventory.announce(scope.tenantId, scope.deviceId ? 'device' : 'tenant', scope.deviceId ?? scope.tenantId);
    const values = r.map.size;
    // A tenant's own admin anonymizing it is anonymized too: not even this entry names them.
    await this.o.auditor.record({
      tenantId: null,
      actorId: by.actorId,
      actor: r.map.get(by.actor) ?? by.actor,
      ip: by.ip ? (r.map.get(by.ip) ?? by.ip) : null,
      action: scope.deviceId ? 'anonymizeDevice' : 'anonymizeTenant',
      target,
      outcome: 'success',
      before: null,
      after: { values, files },
    });
    return { values, files };
  }
}
