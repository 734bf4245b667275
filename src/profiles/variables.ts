/**
 * Strict `{{name}}` substitution: an unknown variable, or a known one with no value, fails the
 * render instead of leaving a hole in a phone's config.
 */
import { CappedMap } from '../capped-map.ts';

export type Vars = ReadonlyMap<string, string | undefined>;

export class VariableError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(problems.join('; '));
    this.name = 'VariableError';
    this.problems = problems;
  }
}

const TOKEN = /\{\{\s*([A-Za-z][A-Za-z0-9_.-]*)\s*\}\}/g;

/**
 * Returns `value` with every variable replaced, or throws {@link VariableError} naming each problem.
 * `where` names the value in those messages; pass a function to build it only when one is needed.
 */
export function substitute(value: string, vars: Vars, where: string | (() => string)): string {
  if (!value.includes('{{')) return value;
  const parts = compile(value);
  let out = parts[0] as string;
  for (let i = 1; i < parts.length; i += 2) {
    const v = vars.get(parts[i] as string);
    if (v === undefined || v === '') return fail(value, vars, where);
    out += v + (parts[i + 1] as string);
  }
  if (out.includes('{{') || out.includes('}}')) return fail(value, vars, where);
  return out;
}

/**
 * A value split at its variables — text, name, text, name, …, text — once: every device of a
 * profile substitutes the same few hundred values, and scanning each one again cost a cold render
 * more than anything else it does.
 */
function compile(value: string): string[] {
  let parts = COMPILED.get(value);
  if (parts === undefined) {
    parts = [];
    let last = 0;
    TOKEN.lastIndex = 0;
    for (let m = TOKEN.exec(value); m !== null; m = TOKEN.exec(value)) {
      parts.push(value.slice(last, m.index), m[1] as string);
      last = TOKEN.lastIndex;
    }
    parts.push(value.slice(last));
    // Long values (a certificate, a script) are split each time rather than kept.
    if (value.length <= 1024) COMPILED.set(value, parts);
  }
  return parts;
}
const COMPILED = new CappedMap<string, string[]>(20_000);

/** The slow path: every problem of a value that does not substitute cleanly. */
function fail(value: string, vars: Vars, where: string | (() => string)): never {
  const at = typeof where === 'string' ? where : where();
  const problems: string[] = [];
  const out = value.replace(TOKEN, (_, name: string) => {
    if (!vars.has(name)) {
      problems.push(`${at}: unknown variable {{${name}}}`);
      return '';
    }
    const v = vars.get(name);
    if (v === undefined || v === '') {
      problems.push(`${at}: {{${name}}} has no value`);
      return '';
    }
    return v;
  });
  if (out.includes('{{') || out.includes('}}')) problems.push(`${at}: unbalanced {{ }} in "${value.slice(0, 80)}"`);
  throw new VariableError(problems);
}
