import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BATCH_USAGE } from './commands/batch.command';
import { EMBED_USAGE } from './commands/embed.command';
import { GENERATE_USAGE } from './commands/generate.command';
import { MODELS_BUILD_USAGE } from './commands/models-build.command';
import { MODELS_DEMO_USAGE } from './commands/models-demo.command';
import { SERVE_USAGE } from './commands/serve.command';

export const USAGE = `ibllm — ImageBind-LLM from the command line

  ibllm models build ...   build a model repository from the official checkpoints
  ibllm models demo ...    build a tiny random-weight demo repository (no downloads)
  ibllm embed ...          ImageBind embeddings of raw inputs, and their fusion
  ibllm generate ...       answer an instruction about raw inputs or a fused ImageBind query
  ibllm serve ...          run the platform (--standalone: one process; --distributed: one per service)
  ibllm batch ...          submit, follow, export, cancel and list batch jobs on a gateway
  ibllm --version          the CLI's version

\`ibllm <command> --help\` shows one command (\`ibllm batch status --help\`: one subcommand).

${MODELS_BUILD_USAGE}

${MODELS_DEMO_USAGE}

${EMBED_USAGE}

${GENERATE_USAGE}

${SERVE_USAGE}

${BATCH_USAGE}`;

const BATCH_SUBCOMMANDS = ['submit', 'status', 'results', 'cancel', 'list'];

/**
 * One batch subcommand's part of BATCH_USAGE: its synopsis (with continuation lines), its
 * paragraph, and the connection options every subcommand takes.
 */
function batchSubcommandUsage(sub: string): string {
  const lines = BATCH_USAGE.split('\n');
  const synopsis: string[] = [];
  const paragraph: string[] = [];
  let inSynopsis = false;
  let inParagraph = false;
  let tail = -1;
  lines.forEach((line, i) => {
    if (line.startsWith('ibllm batch ')) inSynopsis = line.startsWith(`ibllm batch ${sub} `);
    else if (!line.startsWith(' ')) inSynopsis = false;
    if (inSynopsis) synopsis.push(line);
    const word = /^([a-z]+)\s/.exec(line)?.[1];
    if (word !== undefined && BATCH_SUBCOMMANDS.includes(word)) inParagraph = word === sub;
    else if (line === '' || (!line.startsWith(' ') && word === undefined)) inParagraph = false;
    if (inParagraph) paragraph.push(line);
    if (tail < 0 && line.startsWith('Connection')) tail = i;
  });
  const connection = tail >= 0 ? lines.slice(tail).join('\n') : '';
  return [synopsis.join('\n'), '', paragraph.join('\n'), '', connection].join('\n').trimEnd();
}

/** The help text for `argv` (the command line without the program), or undefined when not asked. */
export function helpFor(argv: readonly string[]): string | undefined {
  if (!argv.includes('--help') && !argv.includes('-h')) return undefined;
  const [command, sub] = argv.filter((a) => a !== '--help' && a !== '-h');
  switch (command) {
    case 'models':
      if (sub === 'build') return MODELS_BUILD_USAGE;
      if (sub === 'demo') return MODELS_DEMO_USAGE;
      return `${MODELS_BUILD_USAGE}\n\n${MODELS_DEMO_USAGE}`;
    case 'embed':
      return EMBED_USAGE;
    case 'generate':
      return GENERATE_USAGE;
    case 'serve':
      return SERVE_USAGE;
    case 'batch':
      return sub !== undefined && BATCH_SUBCOMMANDS.includes(sub) ? batchSubcommandUsage(sub) : BATCH_USAGE;
    case undefined:
    default:
      return USAGE;
  }
}

/** `ibllm <version>` from the CLI package's own manifest. */
export function versionLine(): string {
  const manifest = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  return `ibllm ${manifest.version} (node ${process.versions.node})`;
}
