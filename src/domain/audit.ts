import type { Clock } from '../clock.ts';
import type { Logger } from '../logger.ts';
import type { AuditFilter, Store } from '../store/store.ts';
import type { AuditEvent, Page, PageRequest } from './types.ts';

const SECRET = /(password|secret|token|credential)/i;

/** A deep copy with every secret-looking field replaced by `"***"`. */
export function maskSecrets(value: unknown, depth = 0): unknown {
  if (depth > 20) return '…';
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v, depth + 1));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, SECRET.test(k) && v !== null && typeof v !== 'boolean' && typeof v !== 'object' ? '***' : maskSecrets(v, depth + 1)]),
    );
  }
  return value;
}

/**
 * The audit trail: who changed what, when, from where, before and after (secrets masked), and
 * every sign-in. Appending never fails the change it records: a failure is logged loudly instead.
 */
export class Auditor {
  constructor(private readonly deps: { store: Store; clock: Clock; logger: Logger }) {}

  async record(e: Omit<AuditEvent, 'seq' | 'at' | 'before' | 'after'> & { before?: unknown; after?: unknown }): Promise<void> {
    try {
      await this.deps.store.audit.append({
        ...e,
        at: this.deps.clock.now().toISOString(),
        before: maskSecrets(e.before ?? null),
        after: maskSecrets(e.after ?? null),
      });
    } catch (err) {
      this.deps.logger.error({ err, action: e.action, target: e.target }, 'could not write the audit trail');
    }
  }

  list(tenantId: string | null, filter: AuditFilter, page: PageRequest): Promise<Page<AuditEvent>> {
    return this.deps.store.audit.list(tenantId, filter, page);
  }
}
