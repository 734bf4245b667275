import { readFileSync } from 'node:fs';

/**
 * Polycom part numbers ↔ models, kept as data (`templates/polycom-parts.json`): a split image is
 * named `<part>.sip.ld`, and a phone asks for the one of its own part number.
 */
export class PartTable {
  readonly #models: Map<string, string[]>;
  readonly #parts = new Map<string, string[]>();

  constructor(parts: Record<string, string[]>) {
    this.#models = new Map(Object.entries(parts));
    for (const [part, models] of this.#models) for (const m of models) this.#parts.set(m.toUpperCase(), [...(this.#parts.get(m.toUpperCase()) ?? []), part]);
  }

  static load(file = new URL('../../templates/polycom-parts.json', import.meta.url)): PartTable {
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { parts: Record<string, string[]> };
    return new PartTable(doc.parts);
  }

  modelsOf(part: string): string[] | undefined {
    return this.#models.get(part);
  }

  partsOf(model: string): string[] {
    return this.#parts.get(model.toUpperCase()) ?? [];
  }
}

export const PART_NUMBER = /^\d{4}-\d{5}-\d{3}$/;

/**
 * What an image file name says: `3111-48500-001.sip.ld` → that part; `sip.ld` → combined (`null`).
 * Anything else is not a firmware image name (`undefined`).
 */
export function partFromFileName(name: string): string | null | undefined {
  const base = name.split('/').pop() ?? '';
  if (base.toLowerCase() === 'sip.ld') return null;
  const m = /^(\d{4}-\d{5}-\d{3})\.sip\.ld$/i.exec(base);
  return m?.[1];
}

/** Release versions as phones report them: `6.4.3.5018`, `5.9.7.2343`, `4.0.15.1009` … */
export const VERSION = /^[0-9][0-9A-Za-z._-]{0,39}$/;
