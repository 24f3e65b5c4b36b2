import { describe, expect, it } from 'vitest';
import {
  BATCH_JOB_NAMES,
  assertHandlersComplete,
  assertValidJobId,
  isBatchJobKind,
  itemJobId,
  parentJobId,
} from './job-registry';

describe('job registry', () => {
  it('derives deterministic ids that BullMQ accepts (no ":", never an integer)', () => {
    expect(itemJobId('job-1', 7)).toBe('job-1.7');
    expect(parentJobId('job-1')).toBe('job-1.parent');
    // "12.3" would not parse back to itself as an integer, so even numeric job ids are safe.
    expect(`${parseInt(itemJobId('12', 3), 10)}`).not.toBe(itemJobId('12', 3));
    expect(() => assertValidJobId('tenant:token')).toThrow(/A-Z/);
    expect(() => assertValidJobId('')).toThrow();
    expect(() => assertValidJobId('a'.repeat(129))).toThrow();
    expect(() => assertValidJobId('ok_Job-1')).not.toThrow();
  });

  it('knows the job kinds', () => {
    expect(['generate', 'embed', 'index-build', 'index-import'].every(isBatchJobKind)).toBe(true);
    expect(isBatchJobKind('paint')).toBe(false);
  });

  it('accepts exactly one handler per job name', () => {
    const noop = async (): Promise<void> => {};
    expect(() => assertHandlersComplete({ item: noop, finalize: noop })).not.toThrow();
    expect(BATCH_JOB_NAMES).toEqual(['item', 'finalize']);
  });

  it('names missing, unknown and duplicated handlers', () => {
    const noop = async (): Promise<void> => {};
    expect(() => assertHandlersComplete({ item: noop })).toThrow(/no handler for finalize/);
    expect(() => assertHandlersComplete({ item: noop, finalize: noop, itme: noop })).toThrow(
      /handlers for unknown job names itme/,
    );
    expect(() =>
      assertHandlersComplete([
        ['item', noop],
        ['item', noop],
        ['finalize', noop],
      ]),
    ).toThrow(/more than one handler for item/);
    expect(() => assertHandlersComplete({ a: noop }, ['a', 'b'])).toThrow(/no handler for b/);
  });
});
