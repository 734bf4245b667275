import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseWireHead } from '../../src/server/http/wire.ts';

/** Parses a head written with `\n` for CRLF (and without its final blank line). */
const parse = (head: string) => parseWireHead(head, head.length);
const crlf = (lines: string[]) => lines.join('\r\n');

test('takes a plain GET or HEAD with the headers a phone sends', () => {
  const h = parse(
    crlf([
      'GET /p/abcdefgh12/0004f2abcdef.cfg?x=1 HTTP/1.1',
      'Host: prov.example.com',
      'User-Agent: FileTransport PolycomVVX-VVX_500-UA/6.4.3.5018',
      'Authorization:   Digest username="u", nc=00000001   ',
      'If-None-Match: "abc"',
      'X-Request-Id: r-1',
      'Accept: */*',
      'Connection: keep-alive',
    ]),
  );
  assert.equal(h, {
    method: 'GET',
    target: '/p/abcdefgh12/0004f2abcdef.cfg?x=1',
    authorization: 'Digest username="u", nc=00000001',
    ifNoneMatch: '"abc"',
    userAgent: 'FileTransport PolycomVVX-VVX_500-UA/6.4.3.5018',
    requestId: 'r-1',
    close: false,
  });
  assert.is(parse(crlf(['HEAD /p/k/x.cfg HTTP/1.1', 'host: h']))?.method, 'HEAD');
  assert.is(parse(crlf(['GET / HTTP/1.1', 'HOST: h', 'connection: Close']))?.close, true);
  // Only the first `end` characters are the head: what follows is the next request.
  const two = 'GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n';
  assert.is(parseWireHead(two, two.indexOf('\r\n\r\n'))?.target, '/a');
});

test('anything it does not fully understand goes to Node, whose parser answers it', () => {
  const host = 'Host: h';
  const refused: Array<[string, string]> = [
    ['another method', crlf(['POST /p/k/x HTTP/1.1', host])],
    ['PUT (an upload)', crlf(['PUT /p/k/x HTTP/1.1', host])],
    ['a lower-case method', crlf(['get /p/k/x HTTP/1.1', host])],
    ['HTTP/1.0', crlf(['GET /p/k/x HTTP/1.0', host])],
    ['HTTP/2 preface', crlf(['PRI * HTTP/2.0', ''])],
    ['absolute form', crlf(['GET http://h/p/k/x HTTP/1.1', host])],
    ['asterisk form', crlf(['GET * HTTP/1.1', host])],
    ['a space in the target', crlf(['GET /p/k/x y HTTP/1.1', host])],
    ['two spaces', crlf(['GET  /p/k/x HTTP/1.1', host])],
    ['no Host', 'GET /p/k/x HTTP/1.1'],
    ['no Host among headers', crlf(['GET /p/k/x HTTP/1.1', 'Accept: */*'])],
    ['two Hosts', crlf(['GET /p/k/x HTTP/1.1', host, 'Host: other'])],
    ['two Authorization', crlf(['GET /p/k/x HTTP/1.1', host, 'Authorization: Basic a', 'authorization: Basic b'])],
    ['two If-None-Match', crlf(['GET /p/k/x HTTP/1.1', host, 'If-None-Match: "a"', 'If-None-Match: "b"'])],
    ['two User-Agents', crlf(['GET /p/k/x HTTP/1.1', host, 'User-Agent: a', 'User-Agent: b'])],
    ['two request ids', crlf(['GET /p/k/x HTTP/1.1', host, 'X-Request-Id: a', 'X-Request-Id: b'])],
    ['two Connection headers', crlf(['GET /p/k/x HTTP/1.1', host, 'Connection: keep-alive', 'Connection: close'])],
    ['Connection: upgrade', crlf(['GET /p/k/x HTTP/1.1', host, 'Connection: Upgrade', 'Upgrade: websocket'])],
    ['a body by length', crlf(['GET /p/k/x HTTP/1.1', host, 'Content-Length: 0'])],
    ['a chunked body', crlf(['GET /p/k/x HTTP/1.1', host, 'Transfer-Encoding: chunked'])],
    ['Expect', crlf(['GET /p/k/x HTTP/1.1', host, 'Expect: 100-continue'])],
    ['an h2c upgrade', crlf(['GET /p/k/x HTTP/1.1', host, 'HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA'])],
    ['a folded line', crlf(['GET /p/k/x HTTP/1.1', host, 'User-Agent: a', ' folded'])],
    ['a space before the colon', crlf(['GET /p/k/x HTTP/1.1', 'Host : h'])],
    ['an empty name', crlf(['GET /p/k/x HTTP/1.1', host, ': x'])],
    ['a line without colon', crlf(['GET /p/k/x HTTP/1.1', host, 'garbage'])],
    ['a bare LF', 'GET /p/k/x HTTP/1.1\nHost: h'],
    ['a bare LF inside a value', crlf(['GET /p/k/x HTTP/1.1', host, 'User-Agent: a\nX-Injected: 1'])],
    ['a lone CR', crlf(['GET /p/k/x HTTP/1.1', host, 'User-Agent: a\rb'])],
    ['NUL in a value', crlf(['GET /p/k/x HTTP/1.1', host, 'User-Agent: a\u0000b'])],
    ['NUL in the target', crlf(['GET /p/k/x\u0000.cfg HTTP/1.1', host])],
    ['DEL', crlf(['GET /p/k/x HTTP/1.1', host, 'User-Agent: a\u007f'])],
    ['a byte above 0x7f', crlf(['GET /p/k/x HTTP/1.1', host, 'User-Agent: caf\u00e9'])],
    ['a control character in a name', crlf(['GET /p/k/x HTTP/1.1', host, 'X\u0001: 1'])],
    ['an empty line inside', crlf(['GET /p/k/x HTTP/1.1', '', host])],
  ];
  for (const [why, head] of refused) assert.is(parse(head), undefined, why);
});

test('header names are case-insensitive; other headers pass through unread', () => {
  const h = parse(crlf(['GET /p/k/x HTTP/1.1', 'hOsT: h', 'AUTHORIZATION: Basic eA==', 'X-Custom: whatever; "quoted"', 'Cookie: a=b']));
  assert.is(h?.authorization, 'Basic eA==');
});

test.run();
