import type { FleetDomain } from './api.js';

export const SORTABLE = ['name', 'node', 'driver', 'state'] as const;
export type SortColumn = (typeof SORTABLE)[number];
export interface Sort {
  column: SortColumn;
  descending: boolean;
}

/** The loaded rows the table shows: those whose name, node or state contains `filter` (any case), in `sort` order (else as loaded). */
export function fleetView(domains: FleetDomain[], filter: string, sort?: Sort): FleetDomain[] {
  const needle = filter.trim().toLowerCase();
  const kept = needle ? domains.filter((domain) => [domain.name, domain.node, domain.state].some((text) => text.toLowerCase().includes(needle))) : domains;
  if (!sort) return kept;
  const sign = sort.descending ? -1 : 1;
  return [...kept].sort((a, b) => sign * (a[sort.column].localeCompare(b[sort.column]) || a.uuid.localeCompare(b.uuid)));
}

/** A header pressed: its column ascending, or descending if it was already ascending. */
export const nextSort = (current: Sort | undefined, column: SortColumn): Sort => ({ column, descending: current?.column === column && !current.descending });
