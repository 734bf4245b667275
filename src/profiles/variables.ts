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

/** Returns `value` with every variable replaced, or throws {@link VariableError} naming each problem. */
export function substitute(value: string, vars: Vars, where: string): string {
  if (!value.includes('{{')) return value;
  const problems: string[] = [];
  const out = value.replace(TOKEN, (_, name: string) => {
    if (!vars.has(name)) {
      problems.push(`${where}: unknown variable {{${name}}}`);
      return '';
    }
    const v = vars.get(name);
    if (v === undefined || v === '') {
      problems.push(`${where}: {{${name}}} has no value`);
      return '';
    }
    return v;
  });
  if (out.includes('{{') || out.includes('}}')) problems.push(`${where}: unbalanced {{ }} in "${value.slice(0, 80)}"`);
  if (problems.length) throw new VariableError(problems);
  return out;
}
