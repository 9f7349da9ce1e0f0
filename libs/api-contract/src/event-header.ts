import Type from 'typebox';
import { Uuid } from './names.js';

/** The fields every bus event starts with; only the kind and what its sequence is shared with differ. */
export function eventHeaderFields<const K extends string>(kind: K, seqDescription: string) {
  return {
    kind: Type.Literal(kind),
    node: Type.String(),
    seq: Type.Integer({ minimum: 1, description: seqDescription }),
    timestamp: Type.String({ format: 'date-time' }),
    uuid: Uuid,
  };
}
