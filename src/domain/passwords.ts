import { readFileSync } from 'node:fs';
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * Password hashes as `scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>`: the parameters travel with each
 * hash, so the cost can be raised later and old hashes still verify.
 */
const KEY_LEN = 32;

function scryptAsync(password: string, salt: Buffer, N: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, KEY_LEN, { N, r, p, maxmem: 256 * N * r + 16 * 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

export async function hashPassword(password: string, cost = 32768): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, cost, 8, 1);
  return `scrypt$${cost}$8$1$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (![N, r, p].every((n) => Number.isInteger(n) && n > 0)) return false;
  const salt = Buffer.from(parts[4] as string, 'base64');
  const expected = Buffer.from(parts[5] as string, 'base64');
  const key = await scryptAsync(password, salt, N, r, p);
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** Whether a stored hash was made with weaker parameters than today's. */
export function needsRehash(stored: string, cost: number): boolean {
  const N = Number(stored.split('$')[1]);
  return !Number.isFinite(N) || N < cost;
}

let common: Set<string> | undefined;
/** The shipped list of common passwords (`common-passwords.txt`), loaded on first use. */
export function commonPasswords(): Set<string> {
  common ??= new Set(
    readFileSync(new URL('./common-passwords.txt', import.meta.url), 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#')),
  );
  return common;
}

export const MIN_PASSWORD_LENGTH = 10;

/**
 * The password policy: 10 to 256 characters, not one of the 20,000 most common passwords (nor one
 * of them with digits or symbols stuck before or after: `Password2024!`), not the user's email.
 */
export function passwordProblems(password: string, context: { email?: string } = {}): string[] {
  const problems: string[] = [];
  if (password.length < MIN_PASSWORD_LENGTH) problems.push(`must be at least ${MIN_PASSWORD_LENGTH} characters long`);
  if (password.length > 256) problems.push('must be at most 256 characters long');
  const lower = password.toLowerCase();
  const core = lower.replace(/^[^a-z]+|[^a-z]+$/g, '');
  const list = commonPasswords();
  if (list.has(lower) || (core.length >= 6 && list.has(core))) problems.push('is too common: it is on the list of the most used passwords');
  const email = context.email?.toLowerCase();
  if (email && (lower === email || lower === email.split('@')[0])) problems.push('must not be your email address');
  return problems;
}
