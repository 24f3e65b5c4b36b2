import { DomainError } from '@imagebind-llm/errors';
import { CliError } from './cli-error';
import { batch, BATCH_USAGE } from './commands/batch.command';
import { embed, EMBED_USAGE } from './commands/embed.command';
import { generate, GENERATE_USAGE } from './commands/generate.command';
import { modelsBuild, MODELS_BUILD_USAGE } from './commands/models-build.command';
import { modelsDemo, MODELS_DEMO_USAGE } from './commands/models-demo.command';
import { serve, SERVE_USAGE } from './commands/serve.command';

const USAGE = `ibllm — ImageBind-LLM from the command line

  ibllm models build ...   build a model repository from the official checkpoints
  ibllm models demo ...    build a tiny random-weight demo repository (no downloads)
  ibllm embed ...          ImageBind embeddings of raw inputs, and their fusion
  ibllm generate ...       answer an instruction about raw inputs or a fused ImageBind query
  ibllm serve ...          run the platform: gRPC + REST API (--standalone: all in one process)
  ibllm batch ...          submit, follow, export, cancel and list batch jobs on a gateway

${MODELS_BUILD_USAGE}

${MODELS_DEMO_USAGE}

${EMBED_USAGE}

${GENERATE_USAGE}

${SERVE_USAGE}

${BATCH_USAGE}`;

async function main(argv: string[]): Promise<void> {
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  const out = (text: string): void => {
    process.stdout.write(text);
  };
  const [command, sub, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (command === 'models' && sub === 'build') return modelsBuild(rest, log);
  if (command === 'models' && sub === 'demo') return modelsDemo(rest, log);
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
