import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createAccessLogger, requestLogger } from '../../src/logger.ts';

const capture = () => {
  const lines: string[] = [];
  return { lines, stream: { write: (s: string) => lines.push(s) } as unknown as NodeJS.WritableStream };
};

test('the hand-written request line is the line pino writes, hostile paths quoted', async () => {
  const c = capture();
  const logger = createAccessLogger({ level: 'info', destination: c.stream });
  const fields = { reqId: 'abc-1', method: 'GET', path: '/p/k/"\\\n\u0000\u2028x.cfg', status: 404, ms: 0.3, ip: '10.0.0.1' };
  logger.info(fields, 'request');
  requestLogger(logger).write(fields);
  // Written with the next batch, at most 50 ms later.
  assert.is(c.lines.length, 1);
  for (let i = 0; c.lines.length < 2 && i < 200; i++) await new Promise((r) => setTimeout(r, 5));
  assert.is(c.lines.length, 2);
  const [a, b] = c.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  delete a?.time;
  delete b?.time;
  assert.equal(b, a);
  assert.is((b as Record<string, unknown>).path, fields.path);
  assert.match(c.lines[1] as string, /^\{"level":30,"time":"\d{4}-\d\d-\d\dT[\d:.]+Z","svc":"edgeprov","reqId":"abc-1",[^\n]*"msg":"request"\}\n$/);
});

test('plain paths and methods, written without JSON.stringify, are the same line too', async () => {
  for (const [method, path] of [['GET', '/p/k/0004f2abcdef.cfg'], ['HEAD', "/p/k/a b!#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}~"], ['GET', '/p/k/caf\u00e9.cfg']] as const) {
    const c = capture();
    const logger = createAccessLogger({ level: 'info', destination: c.stream });
    const fields = { reqId: 'abc-1', method, path, status: 200, ms: 0.1, ip: '10.0.0.1' };
    logger.info(fields, 'request');
    requestLogger(logger).write(fields);
    for (let i = 0; c.lines.length < 2 && i < 200; i++) await new Promise((r) => setTimeout(r, 5));
    const [a, b] = c.lines.map((l) => l.replace(/"time":"[^"]*"/, ''));
    assert.is(b, a, path);
  }
});

test('a level above info writes no request lines', () => {
  const c = capture();
  const r = requestLogger(createAccessLogger({ level: 'warn', destination: c.stream }));
  assert.is(r.enabled(), false);
});

test.run();
