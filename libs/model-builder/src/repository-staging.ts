import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** Marks the folders a build writes before they are complete; the repository reader skips them. */
export const PARTIAL_MARK = '.partial-';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Builds components next to where they go and moves them into place only when the whole build
 * is done, so an interrupted or failed build (Ctrl-C, SIGTERM, a corrupt checkpoint midway) never
 * leaves a half-written component, and a complete repository already at `out` stays as it was
 * until its replacement is complete.
 *
 * A component is staged as `<out>/<component>/.<version>.partial-<pid>`: a dot folder, which
 * `listComponents` / `resolveComponent` never take for a version.
 */
export class RepositoryStaging {
  private readonly staged = new Map<string, { partial: string; final: string }>();
  /** Folders this build created (the repository, component folders), removed again if left empty. */
  private readonly created: string[] = [];
  private readonly tag: string;

  constructor(
    readonly out: string,
    readonly version: string,
    tag: string | number = process.pid,
  ) {
    if (version.startsWith('.') || /[/\\]/.test(version)) {
      throw new Error(`version ${JSON.stringify(version)} must be a plain folder name`);
    }
    this.tag = String(tag);
  }

  /** Where a component's files are written while the build runs (created empty). */
  dir(component: string): string {
    const known = this.staged.get(component);
    if (known !== undefined) return known.partial;
    const base = join(this.out, component);
    if (!existsSync(this.out)) this.created.push(this.out);
    if (!existsSync(base)) this.created.push(base);
    mkdirSync(base, { recursive: true });
    this.removeAbandoned(base);
    const partial = join(base, `.${this.version}${PARTIAL_MARK}${this.tag}`);
    rmSync(partial, { recursive: true, force: true });
    mkdirSync(partial);
    this.staged.set(component, { partial, final: join(base, this.version) });
    return partial;
  }

  /** Where a component will be once committed. */
  finalDir(component: string): string {
    return join(this.out, component, this.version);
  }

  /**
   * Moves every staged component into place. A version already there is moved aside first and
   * removed only once its replacement is in place (put back if that fails).
   */
  commit(): void {
    for (const [component, { partial, final }] of this.staged) {
      const old = join(this.out, component, `.${this.version}.old-${this.tag}`);
      const replacing = existsSync(final);
      if (replacing) {
        rmSync(old, { recursive: true, force: true });
        renameSync(final, old);
      }
      try {
        renameSync(partial, final);
      } catch (error) {
        if (replacing) renameSync(old, final);
        throw error;
      }
      if (replacing) rmSync(old, { recursive: true, force: true });
      this.staged.delete(component);
    }
  }

  /** Removes whatever was staged. Synchronous and idempotent: safe from a signal handler. */
  discard(): void {
    for (const { partial } of this.staged.values()) rmSync(partial, { recursive: true, force: true });
    this.staged.clear();
    for (const dir of this.created.splice(0).reverse()) {
      try {
        rmdirSync(dir);
      } catch {
        // Not empty (something else lives there) or already gone: leave it.
      }
    }
  }

  /**
   * Folders of builds that were killed outright (SIGKILL, power cut): nobody finishes a partial
   * one, and a version moved aside just before the kill goes back where it was.
   */
  private removeAbandoned(base: string): void {
    for (const name of readdirSync(base)) {
      const m = /^\.(.+)\.(partial|old)-(\d+)$/.exec(name);
      if (m === null || m[3] === this.tag || alive(Number(m[3]))) continue;
      const final = join(base, m[1]!);
      if (m[2] === 'old' && !existsSync(final)) renameSync(join(base, name), final);
      else rmSync(join(base, name), { recursive: true, force: true });
    }
  }
}
