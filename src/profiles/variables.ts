/**
 * Strict `{{name}}` substitution: an unknown variable, or a known one with no value, fails the
 * render instead of leaving a hole in a phone's config.
 */
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
  let out = '';
  let last = 0;
  TOKEN.lastIndex = 0;
  for (let m = TOKEN.exec(value); m !== null; m = TOKEN.exec(value)) {
    const v = vars.get(m[1] as string);
    if (v === undefined || v === '') return fail(value, vars, where);
    out += value.slice(last, m.index) + v;
    last = TOKEN.lastIndex;
  }
  out += value.slice(last);
  if (out.includes('{{') || out.includes('}}')) return fail(value, vars, where);
  return out;
}

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
