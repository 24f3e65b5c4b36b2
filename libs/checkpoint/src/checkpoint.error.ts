/**
 * A file that cannot be read as the format it claims to be. The message always starts with the
 * file name, so a log line alone tells an operator which download to replace.
 */
export class CheckpointFormatError extends Error {
  override readonly name = 'CheckpointFormatError';

  constructor(
    readonly file: string,
    readonly detail: string,
  ) {
    super(`${file}: ${detail}`);
  }
}
