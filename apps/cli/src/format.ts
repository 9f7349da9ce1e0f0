/** Aligned plain-text table, like virsh's. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((row) => row.map(String))];
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? '').length)));
  const line = (row: string[]) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('   ').trimEnd();
  return [line(cells[0]!), widths.map((width) => '-'.repeat(width)).join('---'), ...cells.slice(1).map(line)].join('\n');
}

export function keyValues(pairs: [string, string | number | boolean | undefined][]): string {
  const width = Math.max(...pairs.map(([key]) => key.length)) + 1;
  return pairs
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${`${key}:`.padEnd(width)} ${String(value)}`)
    .join('\n');
}

export function bytes(value: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let unit = 0;
  let scaled = value;
  while (scaled >= 1024 && unit < units.length - 1) {
    scaled /= 1024;
    unit++;
  }
  return `${scaled.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
