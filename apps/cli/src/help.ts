/** One usage entry: a line starting in column 0 plus its indented continuation lines. */
function entries(usage: string): string[] {
  const result: string[] = [];
  for (const line of usage.split('\n')) {
    if (/^\s+\S/.test(line) && result.length > 0) result[result.length - 1] += `\n${line}`;
    else if (line.trim()) result.push(line);
  }
  return result;
}

/** The verbs an entry documents: the first word of each `|`-separated alternative. */
function entryVerbs(entry: string): string[] {
  const firstLine = entry.split('\n')[0]!;
  if (/^(usage|environment|exit codes):/i.test(firstLine) || /^virtbus\b/.test(firstLine)) return [];
  return firstLine
    .split(/\s+\|\s+/)
    .map((alternative) => /^([a-z][a-z0-9-]*)\b/.exec(alternative.trim())?.[1])
    .filter((verb): verb is string => verb !== undefined);
}

/** Every verb the usage text documents, in order. */
export function verbs(usage: string): string[] {
  return [...new Set(entries(usage).flatMap(entryVerbs))];
}

/** The usage entries that document `verb`, or undefined for an unknown verb. */
export function verbHelp(usage: string, verb: string): string | undefined {
  const found = entries(usage).filter((entry) => entryVerbs(entry).includes(verb));
  return found.length > 0 ? found.join('\n') : undefined;
}

/** `virtbus completion bash`: verbs, options, files, and remote names from `virtbus remote list`. */
export function bashCompletion(usage: string): string {
  const options = [...new Set(usage.match(/--[a-z][a-z-]*/g) ?? [])].sort();
  return `# bash completion for virtbus; install: virtbus completion bash > /etc/bash_completion.d/virtbus
_virtbus() {
  local cur prev verb word
  cur=\${COMP_WORDS[COMP_CWORD]}
  prev=\${COMP_WORDS[COMP_CWORD-1]}
  for word in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    case $word in -*) ;; *) verb=$word; break ;; esac
  done
  case $prev in
    --remote) COMPREPLY=($(compgen -W "$(virtbus remote list 2>/dev/null | awk 'NR>2 {print $1}')" -- "$cur")); return ;;
    --ca|--cert|--key|--token-file|--user-data|--meta-data|--network-config) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "${options.join(' ')}" -- "$cur"))
  elif [[ -z $verb ]]; then
    COMPREPLY=($(compgen -W "${verbs(usage).join(' ')}" -- "$cur"))
  elif [[ $verb == help ]]; then
    COMPREPLY=($(compgen -W "${verbs(usage).join(' ')}" -- "$cur"))
  elif [[ $verb == remote ]]; then
    case $prev in
      remote) COMPREPLY=($(compgen -W "add list remove default" -- "$cur")) ;;
      remove|default) COMPREPLY=($(compgen -W "$(virtbus remote list 2>/dev/null | awk 'NR>2 {print $1}')" -- "$cur")) ;;
    esac
  elif [[ $verb == completion ]]; then
    COMPREPLY=($(compgen -W "bash" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -F _virtbus virtbus
`;
}
