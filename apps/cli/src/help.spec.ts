import { describe, expect, it } from 'vitest';
import { bashCompletion, verbHelp, verbs } from './help.js';
import { USAGE } from './main.js';

describe('per-verb help from the usage text', () => {
  it('documents every verb, including the state actions, storage, host network and remote verbs', () => {
    const all = verbs(USAGE);
    for (const verb of ['list', 'start', 'destroy', 'resume', 'migrate', 'net-list', 'pool-list', 'vol-upload', 'iface-commit', 'nwfilter-define', 'remote', 'help', 'completion']) {
      expect(all, verb).toContain(verb);
    }
    for (const verb of all) expect(verbHelp(USAGE, verb), verb).toMatch(new RegExp(`(^|\\| )${verb}\\b`));
  });

  it('gives the entry with its continuation lines, and nothing for an unknown verb', () => {
    expect(verbHelp(USAGE, 'migrate')).toMatch(/^migrate DOMAIN DEST .*\n\s+\[--auto-converge\]/);
    expect(verbHelp(USAGE, 'nosuch')).toBeUndefined();
    expect(verbHelp(USAGE, 'usage')).toBeUndefined();
  });

  it('bash completion knows the verbs and options', () => {
    const script = bashCompletion(USAGE);
    expect(script).toContain('complete -F _virtbus virtbus');
    expect(script).toMatch(/compgen -W "[^"]*\bsnapshot-revert\b/);
    expect(script).toMatch(/compgen -W "[^"]*--remote\b/);
  });
});
