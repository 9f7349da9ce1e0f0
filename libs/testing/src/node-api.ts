import type { Domain } from '@virtbus/api-contract';
import { expect } from 'vitest';
import type { TestGuest } from './guest.js';

export interface NodeApi {
  /** One call below `/v1/nodes/<node>`: its status and JSON body. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> | undefined }>;
  /** The same, expecting `status` (200 by default); the body as T. */
  ok<T>(method: string, path: string, body?: unknown, status?: number): Promise<T>;
  /** The test guest defined like a cloud VM from an empty base volume: a qcow2 root overlay `<name>-root.qcow2` and a cidata cdrom (hda). */
  defineFromImage(name: string, guest: TestGuest, rootSize?: string): Promise<Domain>;
}

/** A gateway's HTTP API for one node, without auth (the gateway's URL is read at each call: it starts in a beforeAll). */
export function nodeApi(gatewayUrl: () => string, node: string): NodeApi {
  const api: NodeApi['api'] = async (method, path, body) => {
    const response = await fetch(`${gatewayUrl()}/v1/nodes/${node}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  };
  async function ok<T>(method: string, path: string, body?: unknown, status = 200): Promise<T> {
    const response = await api(method, path, body);
    expect(response.status, `${method} ${path} → ${JSON.stringify(response.body)}`).toBe(status);
    return response.body as T;
  }
  return {
    api,
    ok,
    async defineFromImage(name, guest, rootSize) {
      await ok('POST', '/storage-pools/default/volumes', { name: 'base.qcow2', capacity: '32M' }, 201);
      return ok<Domain>(
        'POST',
        '/domains/from-image',
        {
          domain: { name, driver: 'qemu', memory: 256, os: { kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline } },
          image: { pool: 'default', volume: 'base.qcow2' },
          ...(rootSize ? { rootSize } : {}),
          cloudInit: { userData: `#cloud-config\nhostname: ${name}\n` },
        },
        201,
      );
    },
  };
}
