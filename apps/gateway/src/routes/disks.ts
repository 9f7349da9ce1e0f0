import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { DEFAULT_DETACH_TIMEOUT_S, DiskAttach, DiskDetach, DiskTarget, DomainFromImage, DomainId, MediaChange, NodeName } from '@virtbus/api-contract';
import Type from 'typebox';
import { Tags } from '../plugins/openapi.js';
import { AgentCallCodes, DomainCallCodes, DomainParams, errorResponses, NodeParams, ref } from '../schemas.js';

const SECOND = 1000;
/** Agents get this much longer than the operation's own timeout to send their reply. */
const REPLY_MARGIN_S = 5;
const DiskParams = Type.Object({ node: NodeName, id: DomainId, target: DiskTarget }, { additionalProperties: false });
const DiskCodes = [...DomainCallCodes, 'NO_STORAGE_POOL', 'NO_STORAGE_VOL', 'PAYLOAD_TOO_LARGE'] as const;

export interface DiskRouteOptions {
  requestTimeoutMs: number;
}

/** Disk hotplug and cdrom media (libvirt attach-disk, detach-disk, change-media) with --live / --config; domains from images. */
export const diskRoutes: FastifyPluginAsyncTypebox<DiskRouteOptions> = async (app, { requestTimeoutMs }) => {
  app.post(
    '/v1/nodes/:node/domains/from-image',
    {
      config: { permission: 'domain.define.image' },
      schema: {
        operationId: 'defineDomainFromImage',
        tags: [Tags.Domains],
        summary: 'Define a domain on a qcow2 overlay of an image volume, with a cloud-init NoCloud seed cdrom',
        params: NodeParams,
        body: DomainFromImage,
        response: {
          201: ref('Domain'),
          ...errorResponses(...AgentCallCodes, 'DOMAIN_EXISTS', 'NO_STORAGE_POOL', 'NO_STORAGE_VOL', 'STORAGE_VOL_EXISTS', 'OPERATION_INVALID', 'OPERATION_UNSUPPORTED', 'PAYLOAD_TOO_LARGE'),
        },
      },
    },
    async (request, reply) => reply.code(201).send(await app.agents.call(request.params.node, 'domain.define.image', request.body, { timeoutMs: Math.max(requestTimeoutMs, 60 * SECOND) })),
  );

  app.post(
    '/v1/nodes/:node/domains/:id/disks',
    {
      config: { permission: 'domain.disk.attach' },
      schema: {
        operationId: 'attachDisk',
        tags: [Tags.Domains],
        summary: 'Attach a disk: hotplug it (live) and/or add it to the definition (config)',
        params: DomainParams,
        body: DiskAttach,
        response: { 200: ref('Domain'), ...errorResponses(...DiskCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'domain.disk.attach', { id: request.params.id, attach: request.body }),
  );

  app.delete(
    '/v1/nodes/:node/domains/:id/disks/:target',
    {
      config: { permission: 'domain.disk.detach' },
      schema: {
        operationId: 'detachDisk',
        tags: [Tags.Domains],
        summary: 'Detach a disk: unplug it (live, waits for the guest) and/or remove it from the definition (config)',
        params: DiskParams,
        querystring: DiskDetach,
        response: { 200: ref('Domain'), ...errorResponses(...DiskCodes) },
      },
    },
    async (request) => {
      const detach = request.query;
      const timeoutMs = Math.max(requestTimeoutMs, ((detach.timeout ?? DEFAULT_DETACH_TIMEOUT_S) + REPLY_MARGIN_S) * SECOND);
      return app.agents.call(request.params.node, 'domain.disk.detach', { id: request.params.id, target: request.params.target, detach }, { timeoutMs });
    },
  );

  app.put(
    '/v1/nodes/:node/domains/:id/disks/:target/media',
    {
      config: { permission: 'domain.media.change' },
      schema: {
        operationId: 'changeMedia',
        tags: [Tags.Domains],
        summary: 'Insert media into a cdrom drive, or eject it (no source)',
        params: DiskParams,
        body: MediaChange,
        response: { 200: ref('Domain'), ...errorResponses(...DiskCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'domain.media.change', { id: request.params.id, target: request.params.target, change: request.body }),
  );
};
