import { LRUCache } from 'lru-cache';

/**
 * An LRU of rendered answers, each tagged with what it was built from (`device:<id>`,
 * `site:<id>`, `profile:<id>` …). A change to one of those drops exactly the entries built from it.
 */
export class DependencyCache<V extends {}> {
  readonly #lru: LRUCache<string, V>;
  readonly #byDep = new Map<string, Set<string>>();
  readonly #depsOf = new Map<string, string[]>();

  constructor(max: number) {
    this.#lru = new LRUCache<string, V>({
      max,
      dispose: (_v, key) => this.#unlink(key),
    });
  }

  get(key: string): V | undefined {
    return this.#lru.get(key);
  }

  set(key: string, value: V, deps: Iterable<string>): void {
    this.#lru.set(key, value);
    const list = [...new Set(deps)];
    this.#depsOf.set(key, list);
    for (const d of list) {
      let keys = this.#byDep.get(d);
      if (!keys) this.#byDep.set(d, (keys = new Set()));
      keys.add(key);
    }
  }

  /** Drops every entry built from `dep`; returns how many. */
  invalidate(dep: string): number {
    const keys = this.#byDep.get(dep);
    if (!keys) return 0;
    const n = keys.size;
    for (const k of [...keys]) this.#lru.delete(k);
    this.#byDep.delete(dep);
    return n;
  }

  delete(key: string): void {
    this.#lru.delete(key);
  }

  clear(): void {
    this.#lru.clear();
  }

  get size(): number {
    return this.#lru.size;
  }

  #unlink(key: string): void {
    for (const d of this.#depsOf.get(key) ?? []) {
      const keys = this.#byDep.get(d);
      keys?.delete(key);
      if (keys?.size === 0) this.#byDep.delete(d);
    }
    this.#depsOf.delete(key);
  }
}
