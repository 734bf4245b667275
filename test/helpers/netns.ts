import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/**
 * Throw-away network namespaces joined by veth pairs, for tests that need several hosts (DHCP
 * servers, clients and relays). Everything a test sends stays inside them; `cleanup()` deletes
 * them (and with them every link and process socket in them).
 */
export interface TestNet {
  /** Namespace names by role. */
  readonly ns: Record<string, string>;
  /** Runs a command inside a namespace, returns stdout. */
  exec(ns: string, cmd: string, args: string[], opts?: { timeoutMs?: number }): string;
  /** Starts a long-running command inside a namespace. */
  spawn(ns: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess;
  /** Joins two namespaces with a veth pair; each end gets an address (CIDR) unless empty. */
  link(a: string, aIf: string, aAddr: string, b: string, bIf: string, bAddr: string): void;
  cleanup(): void;
}

/** Why namespaces cannot be made here, or `undefined` when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const probe = `ep-probe-${randomBytes(3).toString('hex')}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe' });
    return undefined;
  } catch (e) {
    return `cannot create a network namespace (${String((e as { stderr?: Buffer }).stderr ?? e).trim().slice(0, 200)})`;
  }
}

/**
 * Whether a namespace test can run. Missing, it prints why and the test skips; under
 * EDGEPROV_TEST_STRICT=1 (CI) a missing capability fails instead.
 */
export function haveNetns(what: string): boolean {
  const why = netnsUnavailable();
  if (!why) return true;
  if (process.env.EDGEPROV_TEST_STRICT === '1') throw new Error(`${what}: ${why}`);
  process.stdout.write(`\n  SKIP ${what}: ${why}\n`);
  return false;
}

export function createTestNet(roles: string[]): TestNet {
  const tag = randomBytes(3).toString('hex');
  const ns = Object.fromEntries(roles.map((r) => [r, `ep-${tag}-${r}`]));
  const children = new Set<ChildProcess>();
  const run = (args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
  for (const name of Object.values(ns)) {
    run(['netns', 'add', name]);
    run(['-n', name, 'link', 'set', 'lo', 'up']);
  }
  return {
    ns,
    exec(n, cmd, args, opts = {}) {
      return execFileSync('ip', ['netns', 'exec', n, cmd, ...args], { stdio: 'pipe', timeout: opts.timeoutMs ?? 30_000 }).toString();
    },
    spawn(n, cmd, args, env) {
      const child = spawn('ip', ['netns', 'exec', n, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
      children.add(child);
      child.on('exit', () => children.delete(child));
      return child;
    },
    link(a, aIf, aAddr, b, bIf, bAddr) {
      run(['link', 'add', aIf, 'netns', a, 'type', 'veth', 'peer', 'name', bIf, 'netns', b]);
      for (const [n, i, addr] of [
        [a, aIf, aAddr],
        [b, bIf, bAddr],
      ] as const) {
        if (addr) run(['-n', n, 'addr', 'add', addr, 'dev', i]);
        run(['-n', n, 'link', 'set', i, 'up']);
      }
    },
    cleanup() {
      for (const c of children) c.kill('SIGKILL');
      for (const name of Object.values(ns)) {
        try {
          // Kill what still runs inside (daemonized clients), then the namespace.
          const pids = execFileSync('ip', ['netns', 'pids', name], { stdio: 'pipe' }).toString().split(/\s+/).filter(Boolean);
          for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
        try {
          run(['netns', 'del', name]);
        } catch {
          // already gone
        }
      }
    },
  };
}
