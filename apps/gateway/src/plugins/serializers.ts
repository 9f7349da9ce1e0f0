import SerializerSelector from '@fastify/fast-json-stringify-compiler';

type Factory = SerializerSelector.SerializerFactory;
type Serializer = SerializerSelector.Serializer;

/** Shared-schema sets remembered at once: one per gateway build, a process runs one (tests build a few). */
const MAX_SCHEMA_SETS = 8;
const bySchemaSet = new Map<string, Map<string, Serializer>>();

/**
 * Fastify's response serializer factory, built once per distinct response schema: the Operations table's routes repeat
 * the same replies (errors, operations), and fast-json-stringify re-checks every shared schema on each build.
 */
export const cachedSerializerFactory: Factory = (externalSchemas, options) => {
  const compile = SerializerSelector()(externalSchemas, options);
  const setKey = JSON.stringify([externalSchemas ?? null, options ?? null]);
  let built = bySchemaSet.get(setKey);
  if (!built) {
    if (bySchemaSet.size >= MAX_SCHEMA_SETS) bySchemaSet.delete(bySchemaSet.keys().next().value!);
    built = new Map();
    bySchemaSet.set(setKey, built);
  }
  const serializers = built;
  return (route) => {
    const key = JSON.stringify(route.schema ?? null);
    let serializer = serializers.get(key);
    if (!serializer) {
      serializer = compile(route);
      serializers.set(key, serializer);
    }
    return serializer;
  };
};
