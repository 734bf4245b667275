#!/usr/bin/env node
// Entry point for `npx edgeprov` and the container. Runs the compiled JavaScript in dist/ (built by
// `npm start`, `npm run build` or the image build) when it is at least as new as every source file;
// otherwise the TypeScript sources through tsx, so a fresh checkout or an edited file never runs
// stale code.
import { readdirSync, statSync } from 'node:fs';

const root = new URL('..', import.meta.url);

function builtIsCurrent() {
  let built;
  try {
    built = statSync(new URL('dist/.built', root)).mtimeMs;
  } catch {
    return false;
  }
  try {
    for (const f of readdirSync(new URL('src', root), { recursive: true })) {
      if (statSync(new URL(`src/${f}`, root)).mtimeMs > built) return false;
    }
  } catch {
    // No sources next to the build (a trimmed install): the build is all there is.
  }
  return true;
}

let main;
if (builtIsCurrent()) {
  ({ main } = await import('../dist/main.js'));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
