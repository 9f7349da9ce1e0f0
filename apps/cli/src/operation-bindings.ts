import { Operations, type HttpBinding, type OperationName, type OperationSpec } from '@virtbus/api-contract';

/**
 * The HTTP binding of every table operation, as plain data. The build (tools/build) replaces this module in the CLI
 * bundle with the same table written out as a literal, so a cold `virtbus` builds none of the contract's schemas.
 */
export const HttpBindings: Readonly<Partial<Record<OperationName, HttpBinding>>> = Object.fromEntries(
  Object.entries(Operations as Record<string, OperationSpec>).flatMap(([name, spec]) => (spec.http ? [[name, spec.http]] : [])),
);
