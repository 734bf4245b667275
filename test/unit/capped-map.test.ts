import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CappedMap } from '../../src/capped-map.ts';

test('a capped map never holds more than its cap, and forgets everything to stay there', () => {
  const m = new CappedMap<string, number>(3);
  for (const k of ['a', 'b', 'c']) m.set(k, 1);
  assert.is(m.size, 3);
  // Updating a key it holds is not growth.
  m.set('b', 2);
  assert.is(m.size, 3);
  assert.is(m.get('b'), 2);
  m.set('d', 4);
  assert.is(m.size, 1);
  assert.is(m.get('a'), undefined);
  assert.is(m.get('d'), 4);
  for (let i = 0; i < 1000; i++) m.set(`k${i}`, i);
  assert.ok(m.size <= 3);
});

test.run();
