/**
 * `npm run bench -- <name>`: runs one benchmark from this folder. Each prints a table and compares
 * against a real peer measured in the same run (these machines are shared and noisy).
 */
const BENCHES: Record<string, string> = {
  'boot-storm': './boot-storm.ts',
  tftp: './tftp.ts',
  'firmware-http': './firmware-http.ts',
  'cold-render': './cold-render.ts',
};

const name = process.argv[2];
if (!name || !BENCHES[name]) {
  process.stdout.write(`usage: npm run bench -- <name>\nbenchmarks: ${Object.keys(BENCHES).join(', ') || '(none yet)'}\n`);
  process.exitCode = name ? 2 : 0;
} else {
  await import(BENCHES[name] as string);
}
