// Manages the gateway's bearer-token file: create (prints the token once), list, revoke.
import { chmod, rename, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { VirtError } from '@virtbus/api-contract';
import { createToken, emptyTokenFile, fileExists, isRole, loadTokenFile, parseTtl, serializeTokenFile, Roles, type TokenFile } from '@virtbus/security';

const usage = `usage: npx tsx tools/security/token.ts <command> --file tokens.json [options]
  create --name NAME --role ${Roles.join('|')} [--nodes a,b] [--ttl 90d]   prints the token once; only its hash is stored
  list                                                               ids, names, roles, nodes, expiry
  revoke --id ID | --name NAME`;

async function save(path: string, file: TokenFile): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, serializeTokenFile(file), { mode: 0o600 });
  await chmod(temporary, 0o600);
  await rename(temporary, path);
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      file: { type: 'string' },
      name: { type: 'string' },
      role: { type: 'string' },
      nodes: { type: 'string' },
      ttl: { type: 'string' },
      id: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command] = positionals;
  if (values.help || !values.file || !command) {
    console.log(usage);
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const path = values.file;
  const file = (await fileExists(path)) ? await loadTokenFile(path) : emptyTokenFile();
  switch (command) {
    case 'create': {
      if (!values.name || !isRole(values.role)) throw new VirtError('INVALID_ARG', `create needs --name and --role ${Roles.join('|')}`);
      const nodes = values.nodes ? values.nodes.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
      const { token, record } = createToken({ name: values.name, role: values.role, ...(nodes ? { nodes } : {}), ...(values.ttl ? { ttlSeconds: parseTtl(values.ttl) } : {}) });
      file.tokens.push(record);
      await save(path, file);
      console.error(`created token ${record.id} for ${record.name} (${record.role}${record.expiresAt ? `, expires ${record.expiresAt}` : ''}); it is shown only now:`);
      console.log(token);
      return;
    }
    case 'list':
      for (const t of file.tokens) {
        console.log(`${t.id}  ${t.name.padEnd(20)} ${t.role.padEnd(9)} nodes=${t.nodes?.join(',') ?? '*'}  expires=${t.expiresAt ?? 'never'}`);
      }
      return;
    case 'revoke': {
      const keep = file.tokens.filter((t) => !(values.id ? t.id === values.id : t.name === values.name));
      if (!values.id && !values.name) throw new VirtError('INVALID_ARG', 'revoke needs --id or --name');
      const removed = file.tokens.length - keep.length;
      await save(path, { ...file, tokens: keep });
      console.log(`revoked ${removed} token(s)`);
      return;
    }
    default:
      throw new VirtError('INVALID_ARG', `unknown command ${command}\n${usage}`);
  }
}

main().catch((error: unknown) => {
  console.error(VirtError.is(error) ? `${error.code}: ${error.message}` : error);
  process.exitCode = 1;
});
