import type { StoredDomain } from './store.js';

// (name, uuid) in code-unit order, the order of domain lists and their continue tokens
const compareNameUuid = (aName: string, aUuid: string, bName: string, bUuid: string) =>
  aName < bName ? -1 : aName > bName ? 1 : aUuid < bUuid ? -1 : aUuid > bUuid ? 1 : 0;

/**
 * The node's domains by uuid, with a name index and the uuids kept in (name, uuid) order as they come and go: a lookup
 * by name and a page of a list cost O(log n) at 10,000 domains instead of a scan and a sort of every domain.
 */
export class DomainTable {
  private readonly byUuid = new Map<string, StoredDomain>();
  private readonly byName = new Map<string, string>();
  /** Uuids in (name, uuid) order; the strings are the records' own. */
  private readonly ordered: string[] = [];

  get size(): number {
    return this.byUuid.size;
  }

  get(uuid: string): StoredDomain | undefined {
    return this.byUuid.get(uuid);
  }

  has(uuid: string): boolean {
    return this.byUuid.has(uuid);
  }

  findByName(name: string): StoredDomain | undefined {
    const uuid = this.byName.get(name);
    return uuid === undefined ? undefined : this.byUuid.get(uuid);
  }

  values(): IterableIterator<StoredDomain> {
    return this.byUuid.values();
  }

  /** Fills an empty table at once (one sort, not one insert per domain); a later record of a uuid wins. */
  load(records: readonly StoredDomain[]): void {
    if (this.byUuid.size > 0) throw new Error('DomainTable.load needs an empty table');
    for (const stored of records) this.byUuid.set(stored.config.uuid, stored);
    for (const [uuid, stored] of this.byUuid) {
      this.byName.set(stored.config.name, uuid);
      this.ordered.push(uuid);
    }
    const configs = this.byUuid;
    this.ordered.sort((a, b) => {
      const x = configs.get(a)!.config;
      const y = configs.get(b)!.config;
      return compareNameUuid(x.name, x.uuid, y.name, y.uuid);
    });
  }

  set(uuid: string, stored: StoredDomain): void {
    const previous = this.byUuid.get(uuid);
    if (previous && previous.config.name !== stored.config.name) this.unindex(previous);
    this.byUuid.set(uuid, stored);
    if (previous?.config.name === stored.config.name) return;
    this.byName.set(stored.config.name, uuid);
    this.ordered.splice(this.position(stored.config.name, uuid), 0, uuid);
  }

  delete(uuid: string): boolean {
    const previous = this.byUuid.get(uuid);
    if (!previous) return false;
    this.unindex(previous);
    return this.byUuid.delete(uuid);
  }

  /** The records in (name, uuid) order (a new array; records looked up as they are now). */
  sorted(): StoredDomain[] {
    return this.ordered.map((uuid) => this.byUuid.get(uuid)!);
  }

  /** The uuids in (name, uuid) order, shared: read it before the next change. */
  orderedUuids(): readonly string[] {
    return this.ordered;
  }

  private unindex(stored: StoredDomain): void {
    const { name, uuid } = stored.config;
    if (this.byName.get(name) === uuid) this.byName.delete(name);
    const index = this.position(name, uuid);
    if (this.ordered[index] === uuid) this.ordered.splice(index, 1);
  }

  /** The first index whose (name, uuid) is not below the given one. */
  private position(name: string, uuid: string): number {
    let low = 0;
    let high = this.ordered.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const other = this.byUuid.get(this.ordered[middle]!)!.config;
      if (compareNameUuid(other.name, other.uuid, name, uuid) < 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
