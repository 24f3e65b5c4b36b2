import { describe, expect, it } from 'vitest';
import { chooseProviders, detectBackends, SingleFlight, type BackendInfo } from './index';

const backends: BackendInfo[] = [
  { name: 'cpu', bundled: true, installed: true },
  { name: 'webgpu', bundled: true, installed: true },
  { name: 'cuda', bundled: false, installed: false },
  { name: 'tensorrt', bundled: false, installed: false },
];

describe('chooseProviders', () => {
  it('keeps the preference order, drops what cannot run and always ends with cpu', () => {
    const choice = chooseProviders(['cuda', 'webgpu', 'bogus', 'webgpu'], backends);
    expect(choice.providers).toEqual(['webgpu', 'cpu']);
    expect(choice.skipped.map((s) => s.name)).toEqual(['cuda', 'bogus']);
    expect(choice.skipped[0]!.reason).toMatch(/not installed/);
    expect(choice.skipped[1]!.reason).toMatch(/unknown execution provider/);
  });

  it('uses cuda when its library is installed', () => {
    const withCuda = backends.map((b) => (b.name === 'cuda' ? { ...b, installed: true } : b));
    expect(chooseProviders(['CUDA', 'cpu'], withCuda).providers).toEqual(['cuda', 'cpu']);
  });

  it('falls back to cpu for an empty preference', () => {
    expect(chooseProviders([], backends)).toEqual({ providers: ['cpu'], skipped: [] });
  });
});

describe('detectBackends', () => {
  it('finds the bundled CPU provider of the installed onnxruntime-node', () => {
    const found = detectBackends();
    expect(found.find((b) => b.name === 'cpu')).toEqual({ name: 'cpu', bundled: true, installed: true });
  });
});

describe('SingleFlight', () => {
  it('loads a key once for concurrent callers and retries after a failure', async () => {
    let loads = 0;
    let fail = true;
    const sf = new SingleFlight<string, number>(async (key) => {
      loads++;
      await new Promise((r) => setTimeout(r, 5));
      if (fail) throw new Error(`load ${key} failed`);
      return key.length;
    });
    await expect(Promise.all([sf.get('abc'), sf.get('abc')])).rejects.toThrow('load abc failed');
    expect(loads).toBe(1);
    fail = false;
    expect(await Promise.all([sf.get('abc'), sf.get('abc'), sf.get('abcd')])).toEqual([3, 3, 4]);
    expect(loads).toBe(3);
  });
});
