import { ApiFailure, errorText } from './api.js';

/** Form fields by the JSON pointer the API names in a validation error (`/name must match pattern …`). */
const FIELD_OF_PATH: Record<string, string> = {
  '/name': 'name',
  '/domain/name': 'name',
  '/vcpus': 'vcpus',
  '/domain/vcpus': 'vcpus',
  '/memory': 'memory',
  '/domain/memory': 'memory',
  '/driver': 'driver',
  '/domain/driver': 'driver',
  '/image/pool': 'pool',
  '/image/volume': 'volume',
  '/rootSize': 'size',
  '/capacity': 'size',
  '/cloudInit/userData': 'userData',
  '/graphics/password': 'vncPassword',
  '/domain/graphics/password': 'vncPassword',
};

/** The fields an API error is about: schema paths in INVALID_ARG messages, and codes that name one field. */
export function fieldErrors(failure: unknown): Record<string, string> {
  if (!(failure instanceof ApiFailure)) return { form: String(failure) };
  const { code, message } = failure.body;
  if (code === 'DOMAIN_EXISTS') return { name: message };
  if (code === 'NO_STORAGE_POOL') return { pool: message };
  if (code === 'NO_STORAGE_VOL') return { volume: message };
  const found: Record<string, string> = {};
  for (const part of message.replace(/^[a-z]+: /, '').split('; ')) {
    const path = /^(\/[\w/]+) /.exec(part)?.[1];
    const field = path && (FIELD_OF_PATH[path] ?? FIELD_OF_PATH[path.replace(/\/\d+.*$/, '')]);
    if (field) found[field] = `${code}: ${part}`;
  }
  return Object.keys(found).length ? found : { form: errorText(failure) };
}
