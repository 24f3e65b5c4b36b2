import { describe, expect, it } from 'vitest';
import { chooseProviders, detectBackends, type BackendInfo } from './index';

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
