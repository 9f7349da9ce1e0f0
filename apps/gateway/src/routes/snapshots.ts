import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { DomainId, DomainRestorePost, DomainSaveTarget, DomainSnapshotDelete, DomainSnapshotsPost, NodeName, ObjectName, type ErrorCode } from '@virtbus/api-contract';
import { Tags } from '../plugins/openapi.js';
import { DomainCallCodes, DomainParams, errorResponses, NodeParams, ref } from '../schemas.js';

const SnapshotParams = Type.Object({ node: NodeName, id: DomainId, snapshot: ObjectName }, { additionalProperties: false });
const SnapshotCodes: ErrorCode[] = [...DomainCallCodes, 'NOT_FOUND'];
const SaveCodes: ErrorCode[] = [...DomainCallCodes, 'NO_STORAGE_POOL', 'NOT_FOUND', 'PAYLOAD_TOO_LARGE'];
/** Saving, restoring and reverting move a guest's whole memory: they get longer than ordinary calls. */
const MEMORY_CALL_TIMEOUT_MS = 300_000;

/** Snapshots (internal and external), save/restore and managed save of a node's domains. */
export const snapshotRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/nodes/:node/domains/:id/snapshots',
    {
      config: { permission: 'domain.snapshot.list' },
      schema: {
        operationId: 'listDomainSnapshots',
        tags: [Tags.Domains],
        summary: 'Snapshots of a domain in tree order, with parent, children and current',
        params: DomainParams,
        response: { 200: ref('DomainSnapshotList'), ...errorResponses(...DomainCallCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'domain.snapshot.list', { id: request.params.id }),
  );

  app.post(
    '/v1/nodes/:node/domains/:id/snapshots',
    {
      config: { permission: 'domain.snapshot.create' },
      schema: {
        operationId: 'createDomainSnapshot',
        tags: [Tags.Domains],
        summary: 'Take an internal (qcow2, with RAM while running) or external (overlay, disk-only) snapshot',
        params: DomainParams,
        body: DomainSnapshotsPost,
        response: { 201: ref('DomainSnapshot'), ...errorResponses(...DomainCallCodes, 'PAYLOAD_TOO_LARGE') },
      },
    },
    async (request, reply) => {
      const snapshot = await app.agents.call(request.params.node, 'domain.snapshot.create', { id: request.params.id, snapshot: request.body }, { timeoutMs: MEMORY_CALL_TIMEOUT_MS });
      return reply.code(201).send(snapshot);
    },
  );

  app.get(
    '/v1/nodes/:node/domains/:id/snapshots/:snapshot',
    {
      config: { permission: 'domain.snapshot.get' },
      schema: {
        operationId: 'getDomainSnapshot',
        tags: [Tags.Domains],
        summary: 'One snapshot',
        params: SnapshotParams,
        response: { 200: ref('DomainSnapshot'), ...errorResponses(...SnapshotCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'domain.snapshot.get', { id: request.params.id, snapshot: request.params.snapshot }),
  );

  app.post(
    '/v1/nodes/:node/domains/:id/snapshots/:snapshot/revert',
    {
      config: { permission: 'domain.snapshot.revert' },
      schema: {
        operationId: 'revertDomainSnapshot',
        tags: [Tags.Domains],
        summary: 'Return the domain to a snapshot; for an external one the overlays made after it are discarded',
        params: SnapshotParams,
        response: { 200: ref('Domain'), ...errorResponses(...SnapshotCodes) },
      },
    },
    async (request) =>
      app.agents.call(request.params.node, 'domain.snapshot.revert', { id: request.params.id, snapshot: request.params.snapshot }, { timeoutMs: MEMORY_CALL_TIMEOUT_MS }),
  );

  app.delete(
    '/v1/nodes/:node/domains/:id/snapshots/:snapshot',
    {
      config: { permission: 'domain.snapshot.delete' },
      schema: {
        operationId: 'deleteDomainSnapshot',
        tags: [Tags.Domains],
        summary: 'Delete a snapshot (external ones are merged with commit), its children, or only the metadata',
        params: SnapshotParams,
        querystring: DomainSnapshotDelete,
        response: { 200: ref('DomainSnapshotsDeleted'), ...errorResponses(...SnapshotCodes) },
      },
    },
    async (request) =>
      app.agents.call(
        request.params.node,
        'domain.snapshot.delete',
        { id: request.params.id, snapshot: request.params.snapshot, options: request.query },
        { timeoutMs: MEMORY_CALL_TIMEOUT_MS },
      ),
  );

  app.post(
    '/v1/nodes/:node/domains/:id/save',
    {
      config: { permission: 'domain.save' },
      schema: {
        operationId: 'saveDomain',
        tags: [Tags.Domains],
        summary: "Save a running domain's memory state to a file in a dir pool and stop it (shutoff, reason saved)",
        params: DomainParams,
        body: DomainSaveTarget,
        response: { 200: ref('Domain'), ...errorResponses(...SaveCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'domain.save', { id: request.params.id, target: request.body }, { timeoutMs: MEMORY_CALL_TIMEOUT_MS }),
  );

  app.post(
    '/v1/nodes/:node/restore',
    {
      config: { permission: 'domain.restore' },
      schema: {
        operationId: 'restoreDomain',
        tags: [Tags.Domains],
        summary: 'Start a domain from a save file in a pool; the file names the domain',
        params: NodeParams,
        body: DomainRestorePost,
        response: { 200: ref('Domain'), ...errorResponses(...SaveCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'domain.restore', request.body, { timeoutMs: MEMORY_CALL_TIMEOUT_MS }),
  );

  app.get(
    '/v1/nodes/:node/domains/:id/managed-save',
    {
      config: { permission: 'domain.managedsave.get' },
      schema: {
        operationId: 'getManagedSave',
        tags: [Tags.Domains],
        summary: 'Whether the domain has a managed save image',
        params: DomainParams,
        response: { 200: ref('ManagedSaveInfo'), ...errorResponses(...DomainCallCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'domain.managedsave.get', { id: request.params.id }),
  );

  app.post(
    '/v1/nodes/:node/domains/:id/managed-save',
    {
      config: { permission: 'domain.managedsave' },
      schema: {
        operationId: 'managedSaveDomain',
        tags: [Tags.Domains],
        summary: 'Save the domain to an image the agent keeps; the next plain start resumes from it',
        params: DomainParams,
        response: { 200: ref('Domain'), ...errorResponses(...DomainCallCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'domain.managedsave', { id: request.params.id }, { timeoutMs: MEMORY_CALL_TIMEOUT_MS }),
  );

  app.delete(
    '/v1/nodes/:node/domains/:id/managed-save',
    {
      config: { permission: 'domain.managedsave.remove' },
      schema: {
        operationId: 'removeManagedSave',
        tags: [Tags.Domains],
        summary: 'Throw the managed save image away (the next start boots afresh)',
        params: DomainParams,
        response: { 200: ref('ManagedSaveInfo'), ...errorResponses(...DomainCallCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'domain.managedsave.remove', { id: request.params.id }),
  );
};
