/**
 * A Map that empties itself before it would hold more than `max` keys: for memos on hot paths
 * (names, User-Agents, headers, templates) whose keys repeat in practice but come from clients or
 * users who could send endless new ones. Forgetting everything at once costs one recomputation per
 * key in use and nothing per lookup, where a least-recently-used order would cost on every hit.
 */
export class CappedMap<K, V> extends Map<K, V> {
  constructor(readonly max: number) {
    super();
  }

  override set(key: K, value: V): this {
    if (this.size >= this.max && !this.has(key)) this.clear();
    return super.set(key, value);
  }
}
