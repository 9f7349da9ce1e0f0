import type { FleetDomain } from '@virtbus/api-contract';

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
  return [...kept].sort(fleetOrder(sort));
}

const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The gateway's order for `?sort=&order=`: the column, then node, name and uuid in code-unit order, all reversed when descending. */
export const fleetOrder =
  (sort?: Sort) =>
  (a: FleetDomain, b: FleetDomain): number =>
    (sort?.descending ? -1 : 1) *
    (byCodeUnits(a[sort?.column ?? 'node'], b[sort?.column ?? 'node']) || byCodeUnits(a.node, b.node) || byCodeUnits(a.name, b.name) || byCodeUnits(a.uuid, b.uuid));

/** The query of `GET /v1/domains` that filters and sorts the whole fleet on the gateway, not only the loaded rows. */
export function fleetQuery(filter: string, sort?: Sort): string {
  const search = filter.trim();
  return [search && `search=${encodeURIComponent(search)}`, sort && `sort=${sort.column}`, sort?.descending && 'order=desc'].filter(Boolean).join('&');
}

/** A header pressed: its column ascending, or descending if it was already ascending. */
export const nextSort = (current: Sort | undefined, column: SortColumn): Sort => ({ column, descending: current?.column === column && !current.descending });
