import type { ComponentChild } from 'preact';
import { errorText } from './api.js';

/** A table cell with attributes of its own (a test id, a class). */
export class Cell {
  constructor(
    readonly props: Record<string, unknown>,
    readonly content: ComponentChild,
  ) {}
}

/** A table with a caption-like label; a column header may be a `Cell` (attributes of its own); a column given as `false` (not allowed for this role) is left out with its cells. Rows are keyed by `name` unless `rowKey` says otherwise; `testId` names each row `<testId>-<key>`. */
export function Table<T>({
  label,
  columns,
  rows,
  rowKey = (row) => (row as { name?: string }).name ?? '',
  testId,
  rowProps,
  cells,
}: {
  label: string;
  columns: (ComponentChild | Cell | false)[];
  rows: T[];
  rowKey?: (row: T, index: number) => string | number;
  testId?: string;
  rowProps?: (row: T) => Record<string, unknown>;
  cells: (row: T) => (ComponentChild | Cell)[];
}) {
  const shown = columns.map((column) => column !== false);
  return (
    <table aria-label={label}>
      <thead>
        <tr>
          {columns.map((column) => column !== false && (column instanceof Cell ? <th scope="col" {...column.props}>{column.content}</th> : <th scope="col">{column}</th>))}
        </tr>
      </thead>
      <tbody>
        {rows.map((row, index) => (
          <tr key={rowKey(row, index)} {...(testId ? { 'data-testid': `${testId}-${rowKey(row, index)}` } : {})} {...(rowProps?.(row) ?? {})}>
            {cells(row).map((cell, column) => shown[column] && (cell instanceof Cell ? <td {...cell.props}>{cell.content}</td> : <td>{cell}</td>))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function ErrorLine({ error }: { error: string }) {
  return error ? (
    <p class="error" role="alert">
      {error}
    </p>
  ) : null;
}

/** A labelled text input bound to a string state. */
export function TextField({ label, value, onValue, ...props }: { label: string; value: string; onValue: (value: string) => void; [prop: string]: unknown }) {
  return (
    <label>
      {label} <input value={value} onInput={(event) => onValue((event.target as HTMLInputElement).value)} {...props} />
    </label>
  );
}

/** Runs a call, then `done`; a failure shows through `setError`. */
export const runner =
  (setError: (text: string) => void, done: () => unknown = () => undefined) =>
  async (call: () => Promise<unknown>): Promise<void> => {
    setError('');
    try {
      await call();
      await done();
    } catch (failure) {
      setError(errorText(failure));
    }
  };

/** A row's buttons, each named `<label> <subject>` for screen readers (the visible text is the label). */
export function RowActions({ subject, actions }: { subject: string; actions: { label: string; disabled: boolean; run: () => unknown }[] }) {
  return (
    <>
      {actions.map((action) => (
        <button key={action.label} onClick={() => void action.run()} disabled={action.disabled} aria-label={`${action.label} ${subject}`}>
          {action.label}
        </button>
      ))}
    </>
  );
}
