/**
 * MAC addresses as users and phones write them: `00:04:F2:AB:CD:EF`, `00-04-f2-ab-cd-ef` or
 * `0004f2abcdef`. Stored and compared as 12 lowercase hex digits.
 */
const FORMS = [
  /^([0-9a-f]{2})(?::([0-9a-f]{2})){5}$/i,
  /^([0-9a-f]{2})(?:-([0-9a-f]{2})){5}$/i,
  /^[0-9a-f]{12}$/i,
];

/** The canonical form of a MAC, or `undefined` when `input` is not one of the accepted forms. */
export function normalizeMac(input: string): string | undefined {
  if (input.length > 17) return undefined;
  if (!FORMS.some((re) => re.test(input))) return undefined;
  return input.replace(/[:-]/g, '').toLowerCase();
}

/** A MAC prefix filter (`00:04:f2`, `0004F2`, `00-04`): lowercase hex without separators. */
export function normalizeMacPrefix(input: string): string | undefined {
  let hex = '';
  for (const ch of input) {
    if (ch === ':' || ch === '-') {
      // A separator may only follow a whole octet.
      if (hex.length === 0 || hex.length % 2 !== 0) return undefined;
    } else if (/^[0-9a-f]$/i.test(ch)) {
      hex += ch.toLowerCase();
    } else {
      return undefined;
    }
  }
  return hex.length > 0 && hex.length <= 12 ? hex : undefined;
}

