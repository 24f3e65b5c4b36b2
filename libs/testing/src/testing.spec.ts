import { describe, expect, it } from 'vitest';
import { startProcess, strictFake } from './index';

interface Store {
  get(key: string): string;
  put(key: string, value: string): void;
}

describe('strictFake', () => {
  it('serves the given members and throws on anything else', () => {
    const fake = strictFake<Store>('store', { get: (k) => `v:${k}` });
    expect(fake.get('a')).toBe('v:a');
    expect(() => fake.put('a', 'b')).toThrow('strict fake store: unexpected access to put');
  });

  it('is not mistaken for a promise', async () => {
    const fake = strictFake<Store>('store', {});
    await expect(Promise.resolve(fake)).resolves.toBe(fake);
  });
});

describe('startProcess', () => {
  it('parses JSON lines, keeps other lines raw, and reports the exit code', async () => {
    const p = startProcess(process.execPath, [
      '-e',
      'console.log(JSON.stringify({event:"up",port:7})); console.log("plain"); process.exit(3)',
    ]);
    expect(await p.waitForLine((l) => l['event'] === 'up')).toEqual({ event: 'up', port: 7 });
    expect(await p.exited()).toEqual({ code: 3, signal: null });
    expect(p.lines).toEqual([{ event: 'up', port: 7 }, { raw: 'plain' }]);
  });

  it('fails fast when the process exits before the awaited line', async () => {
    const p = startProcess(process.execPath, ['-e', 'process.stderr.write("boom"); process.exit(1)']);
    await expect(p.waitForLine((l) => l['event'] === 'never', 5_000)).rejects.toThrow(
      /process exited \(code 1.*boom/s,
    );
  });
});
