import Type, { type Static } from 'typebox';
import { NodeName } from './names.js';

/** HTTP roles, weakest first; each includes everything the weaker ones may do (libs/security maps them to permissions). */
export const CallerRoles = ['read-only', 'operator', 'admin'] as const;
export type CallerRole = (typeof CallerRoles)[number];

/** How the gateway learned who is calling. */
export const CallerVias = ['token', 'certificate', 'loopback-dev'] as const;

/** `GET /v1/whoami`: who the caller is, so a client (the web UI) shows only what its role allows. */
export const CallerIdentity = Type.Object(
  {
    name: Type.String(),
    role: Type.Enum([...CallerRoles], { description: 'read-only reads and follows events; operator also runs domains and opens consoles; admin also changes definitions, storage and networks' }),
    nodes: Type.Union([Type.Literal('all'), Type.Array(NodeName)], { description: 'The nodes this caller may reach' }),
    via: Type.Enum([...CallerVias]),
  },
  { additionalProperties: false, title: 'CallerIdentity' },
);
export type CallerIdentity = Static<typeof CallerIdentity>;
