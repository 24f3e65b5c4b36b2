import { DomainError } from '@imagebind-llm/errors';
import { CliError } from './cli-error';
import { batch } from './commands/batch.command';
import { embed } from './commands/embed.command';
import { generate } from './commands/generate.command';
import { modelsBuild } from './commands/models-build.command';
import { modelsDemo } from './commands/models-demo.command';
import { serve } from './commands/serve.command';
import { helpFor, USAGE, versionLine } from './help';

async function main(argv: string[]): Promise<void> {
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  const out = (text: string): void => {
    process.stdout.write(text);
  };
  const [command, sub, ...rest] = argv;
  if (command === undefined || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (command === '--version' || command === '-V' || command === 'version') {
    process.stdout.write(`${versionLine()}\n`);
    return;
  }
  // `--help` anywhere: the help of the command (and subcommand) named before it, on stdout.
  const help = helpFor(argv);
  if (help !== undefined) {
    process.stdout.write(`${help}\n`);
    return;
  }
  if (command === 'models' && sub === 'build') return modelsBuild(rest, log);
  if (command === 'models' && sub === 'demo') return modelsDemo(rest, log);
  if (command === 'models') {
    throw new CliError(
      `${sub === undefined ? '`ibllm models` needs a subcommand' : `unknown command: models ${sub}`}: build or demo (try \`ibllm models --help\`)`,
    );
  }
  if (command === 'embed') return embed(sub === undefined ? rest : [sub, ...rest], { out, log });
  if (command === 'serve') return serve(sub === undefined ? rest : [sub, ...rest], log);
  if (command === 'batch') return batch(sub === undefined ? [] : [sub, ...rest], { out, log });
  if (command === 'generate') return generate(sub === undefined ? rest : [sub, ...rest], { out, log });
  throw new CliError(`unknown command: ${[command, sub].filter(Boolean).join(' ')} (try \`ibllm --help\`)`);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof CliError) {
    process.stderr.write(`ibllm: ${error.message}\n`);
    process.exit(error.exitCode);
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (error instanceof TypeError && typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
    process.stderr.write(`ibllm: ${error.message.replace(/\n+/g, ' ')}\n`);
    process.exit(2);
  }
  if (error instanceof DomainError) {
    process.stderr.write(`ibllm: ${error.message}\n`);
    process.exit(2);
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`ibllm: ${message}\n`);
  process.exit(1);
});
