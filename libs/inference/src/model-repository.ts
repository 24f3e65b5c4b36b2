import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';

/** Layout version of model.json; bumped on incompatible changes. */
export const MODEL_JSON_FORMAT = 1;

export interface TensorSpec {
  readonly name: string;
  readonly dtype: string;
  /** Symbolic dims are strings ("batch"). */
  readonly dims: readonly (number | string)[];
}

export interface SourceFile {
  readonly role: string;
  readonly file: string;
  readonly sha256: string;
  readonly bytes: number;
}

/**
 * `MODEL_REPO/<component>/<version>/model.json` (ARCHITECTURE §4): what a component is, which
 * files hold it, its inputs/outputs and dims, and the checkpoints it was built from. Services
 * read dims from here, never from literals.
 */
export interface ModelJson {
  readonly format: number;
  readonly component: string;
  readonly version: string;
  readonly builder: { readonly name: string; readonly version: string };
  readonly createdAt: string;
  readonly sources: readonly SourceFile[];
  /** Files of the component by role, relative to its folder (e.g. { decoder: "model.onnx" }). */
  readonly files: Readonly<Record<string, string>>;
  /** Weight storage type: "float32", "float16", "int8" or "int4". */
  readonly dtype: string;
  readonly graphs?: Readonly<
    Record<string, { readonly inputs: readonly TensorSpec[]; readonly outputs: readonly TensorSpec[] }>
  >;
  /** Component-specific settings (model dims, special token ids, ...). */
  readonly config: Readonly<Record<string, unknown>>;
}

export interface ResolvedComponent {
  readonly dir: string;
  readonly json: ModelJson;
  /** Absolute path of a file by role. */
  file(role: string): string;
}

// Dot folders are never versions or components: `ibllm models build` writes each component as
// `<component>/.<version>.partial-<pid>` and renames it into place only when the build is complete.
const hidden = (name: string): boolean => name.startsWith('.');

function versionsOf(dir: string): string[] {
  return readdirSync(dir)
    .filter(
      (v) => !hidden(v) && existsSync(join(dir, v, 'model.json')) && statSync(join(dir, v)).isDirectory(),
    )
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
}

/**
 * Refuses a repository path that is not a folder, before anything looks for components in it: a
 * typo in `--models` / MODEL_REPO should say so, not blame a missing component.
 */
export function requireRepositoryFolder(repo: string): void {
  if (!existsSync(repo)) {
    throw new DomainError(
      ErrorCode.NotFound,
      `model repository ${repo} does not exist: give the folder that \`ibllm models build ... --out DIR\` ` +
        `or \`ibllm models demo --out DIR\` wrote`,
    );
  }
  if (!statSync(repo).isDirectory()) {
    throw new DomainError(
      ErrorCode.InvalidInput,
      `model repository ${repo} is a file, not a folder: give the folder \`ibllm models build --out\` wrote`,
    );
  }
}

/** Components present in a repository, with their versions. */
export function listComponents(repo: string): { component: string; versions: string[] }[] {
  requireRepositoryFolder(repo);
  return readdirSync(repo)
    .filter((c) => !hidden(c) && statSync(join(repo, c)).isDirectory())
    .map((component) => ({ component, versions: versionsOf(join(repo, component)) }))
    .filter((c) => c.versions.length > 0);
}

/**
 * Finds a component in a model repository (newest version unless one is named) and checks its
 * model.json. Errors say what is missing and how to build it.
 */
export function resolveComponent(repo: string, component: string, version?: string): ResolvedComponent {
  requireRepositoryFolder(repo);
  const base = join(repo, component);
  if (!existsSync(base)) {
    throw new DomainError(
      ErrorCode.NotFound,
      `model repository ${repo} has no ${component} component; build it with \`ibllm models build ... --out ${repo}\``,
    );
  }
  const versions = versionsOf(base);
  const chosen = version ?? versions.at(-1);
  if (chosen === undefined || !versions.includes(chosen)) {
    throw new DomainError(
      ErrorCode.NotFound,
      `${component} has no version ${version ?? '(none built)'} in ${repo}; found: ${versions.join(', ') || 'none'}`,
    );
  }
  const dir = join(base, chosen);
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as ModelJson;
  if (json.format !== MODEL_JSON_FORMAT) {
    throw new DomainError(
      ErrorCode.FailedPrecondition,
      `${dir}/model.json has format ${json.format}; this build reads format ${MODEL_JSON_FORMAT}: rebuild the repository`,
    );
  }
  return {
    dir,
    json,
    file(role) {
      const f = json.files[role];
      if (f === undefined)
        throw new DomainError(ErrorCode.FailedPrecondition, `${dir}/model.json lists no "${role}" file`);
      return join(dir, f);
    },
  };
}
