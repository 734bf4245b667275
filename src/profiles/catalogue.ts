import { readFileSync } from 'node:fs';
import { CappedMap } from '../capped-map.ts';

/** One known Polycom parameter's rule, from `templates/polycom-params.json`. */
export type ParamRule =
  | { type: 'bool' }
  | { type: 'int'; min?: number; max?: number }
  | { type: 'enum'; values: string[] }
  | { type: 'string'; max?: number }
  | { type: 'regex'; pattern: string }
  | { type: 'host' };

export type ParamCheck = { kind: 'ok' } | { kind: 'unknown' } | { kind: 'invalid'; message: string };

interface CompiledRule {
  re: RegExp;
  rule: ParamRule;
  pattern?: RegExp;
}

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})?)*\.?|\[?[0-9A-Fa-f:.]+\]?)$/;

/** The parameter catalogue: kept as data so new names need no code change. */
export class ParamCatalogue {
  readonly #exact = new Map<string, CompiledRule>();
  readonly #patterns: CompiledRule[] = [];
  /** Which rule a name resolved to (null: none); names repeat across every device. */
  readonly #lookup = new CappedMap<string, CompiledRule | null>(100_000);

  constructor(rules: Record<string, ParamRule>) {
    for (const [name, rule] of Object.entries(rules)) {
      if (name.startsWith('$')) continue;
      const compiled: CompiledRule = {
        re: new RegExp(`^${name.split('.').map((p) => (p === 'N' || p === 'M' ? '\\d+' : p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('\\.')}$`),
        rule,
        ...(rule.type === 'regex' && { pattern: new RegExp(rule.pattern) }),
      };
      if (/(^|\.)[NM](\.|$)/.test(name)) this.#patterns.push(compiled);
      else this.#exact.set(name, compiled);
    }
  }

  static load(file = new URL('../../templates/polycom-params.json', import.meta.url)): ParamCatalogue {
    return new ParamCatalogue(JSON.parse(readFileSync(file, 'utf8')) as Record<string, ParamRule>);
  }

  check(name: string, value: string): ParamCheck {
    let c = this.#lookup.get(name);
    if (c === undefined) {
      c = this.#exact.get(name) ?? this.#patterns.find((p) => p.re.test(name)) ?? null;
      this.#lookup.set(name, c);
    }
    if (!c) return { kind: 'unknown' };
    const r = c.rule;
    const bad = (message: string): ParamCheck => ({ kind: 'invalid', message });
    switch (r.type) {
      case 'bool':
        return value === '0' || value === '1' ? { kind: 'ok' } : bad(`must be 0 or 1, not "${value}"`);
      case 'int': {
        if (!/^-?\d{1,10}$/.test(value)) return bad(`must be a whole number, not "${value}"`);
        const n = Number(value);
        if (r.min !== undefined && n < r.min) return bad(`must be at least ${r.min}, not ${n}`);
        if (r.max !== undefined && n > r.max) return bad(`must be at most ${r.max}, not ${n}`);
        return { kind: 'ok' };
      }
      case 'enum':
        return r.values.includes(value) ? { kind: 'ok' } : bad(`must be one of ${r.values.join(', ')}, not "${value}"`);
      case 'string':
        return r.max !== undefined && value.length > r.max ? bad(`must be at most ${r.max} characters`) : { kind: 'ok' };
      case 'regex':
        return c.pattern?.test(value) ? { kind: 'ok' } : bad(`"${value}" does not match ${r.pattern}`);
      case 'host':
        return value === '' || (value.length <= 253 && HOST.test(value)) ? { kind: 'ok' } : bad(`"${value}" is not a host name or address`);
    }
  }
}
