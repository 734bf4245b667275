import { execFileSync } from 'node:child_process';

/**
 * Whether a system tool is on this machine. Missing, the calling test skips with a printed reason,
 * unless EDGEPROV_TEST_STRICT=1 (CI), where a missing tool is a failure.
 */
export function haveTool(name: string, what: string): boolean {
  try {
    execFileSync('which', [name], { stdio: 'ignore' });
    return true;
  } catch {
    if (process.env.EDGEPROV_TEST_STRICT === '1') throw new Error(`${name} is missing (needed for ${what}); .ci/run installs it`);
    process.stdout.write(`\n  SKIP ${what}: ${name} is not installed (apt-get install ${name === 'tftp' ? 'tftp-hpa' : name})\n`);
    return false;
  }
}
