#!/usr/bin/env node
// `npm install` runs this: builds the native TFTP pump (native/tftp_pump.c, see
// src/server/tftp/native-pump.ts) with node-gyp against the Node headers npm is set up with. It is
// an accelerator, not a requirement: if it cannot be built, firmware still goes out over TFTP from
// the event loop (slower in lock-step transfers), so a failure here warns and does not stop the
// install. `EDGEPROV_TEST_STRICT=1` (CI) makes the tests insist on it.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const fallback = 'TFTP firmware downloads will be sent from the event loop instead (see README, "TFTP")';
if (process.platform !== 'linux') {
  process.stdout.write(`edgeprov: the native TFTP pump is built on Linux only; ${fallback}.\n`);
  process.exit(0);
}
// npm tells its scripts where its own node-gyp is; run by hand, node-gyp must be on PATH.
const gyp = process.env.npm_config_node_gyp;
const [cmd, args] = gyp ? [process.execPath, [gyp]] : ['node-gyp', []];
const r = spawnSync(cmd, [...args, 'rebuild', '--loglevel=warn'], { cwd: root, stdio: 'inherit' });
if (r.status === 0) process.stdout.write('edgeprov: native TFTP pump built (build/Release/tftp_pump.node).\n');
else process.stderr.write(`edgeprov: could not build the native TFTP pump (${r.error?.message ?? `node-gyp exited ${r.status}`}); ${fallback}.\n`);
