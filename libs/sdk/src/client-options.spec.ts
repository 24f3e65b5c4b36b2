import { errorOf } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import { buildTargets, DEFAULT_RETRY, resolveOptions } from './client-options';
import { ImageBindError } from './image-bind-error';

describe('buildTargets', () => {
  it('passes one address or a scheme target through', () => {
    expect(buildTargets('gateway.example:50051')).toEqual(['gateway.example:50051']);
    expect(buildTargets(['127.0.0.1:1'])).toEqual(['127.0.0.1:1']);
    expect(buildTargets('dns:///gateway.example:50051')).toEqual(['dns:///gateway.example:50051']);
    expect(buildTargets('ipv4:10.0.0.1:1,10.0.0.2:1')).toEqual(['ipv4:10.0.0.1:1,10.0.0.2:1']);
  });

  it('joins IP literals of one family into one multi-address target', () => {
    expect(buildTargets(['127.0.0.1:1', '127.0.0.1:2'])).toEqual(['ipv4:127.0.0.1:1,127.0.0.1:2']);
    expect(buildTargets('10.0.0.1:5, 10.0.0.2:5')).toEqual(['ipv4:10.0.0.1:5,10.0.0.2:5']);
    expect(buildTargets(['[::1]:1', '[::1]:2'])).toEqual(['ipv6:[::1]:1,[::1]:2']);
  });

  it('keeps host names (or mixed families) as separate targets', () => {
    expect(buildTargets(['a.example:1', 'b.example:1'])).toEqual(['a.example:1', 'b.example:1']);
    expect(buildTargets(['127.0.0.1:1', '[::1]:1'])).toEqual(['127.0.0.1:1', '[::1]:1']);
  });

  it('says which address is wrong and how it should look', () => {
    expect(errorOf(ImageBindError, () => buildTargets([])).field).toBe('addresses');
    const noPort = errorOf(ImageBindError, () => buildTargets(['a.example:1', 'b.example']));
    expect(noPort.field).toBe('addresses[1]');
    expect(noPort.message).toContain("'host:port'");
    expect(errorOf(ImageBindError, () => buildTargets(['a:70000'])).field).toBe('addresses[0]');
    expect(errorOf(ImageBindError, () => buildTargets(['::1:5'])).field).toBe('addresses[0]');
    expect(errorOf(ImageBindError, () => buildTargets(['[a.example]:5'])).message).toContain('IPv6');
    expect(errorOf(ImageBindError, () => buildTargets(['dns:///x:1', 'y:1'])).message).toContain(
      'pass it alone',
    );
  });
});

describe('resolveOptions', () => {
  it('fills in defaults and merges a partial retry policy', () => {
    const resolved = resolveOptions({ addresses: 'h:1', retry: { maxAttempts: 5 } });
    expect(resolved.retry).toEqual({ ...DEFAULT_RETRY, maxAttempts: 5 });
    expect(resolved.timeoutMs).toBe(30_000);
    expect(resolved.streamTimeoutMs).toBeGreaterThan(resolved.timeoutMs);
    expect(resolved.tls).toBeUndefined();
    expect(resolveOptions({ addresses: 'h:1', tls: true }).tls).toEqual({});
    expect(resolveOptions({ addresses: 'h:1', streamTimeoutMs: Infinity }).streamTimeoutMs).toBe(Infinity);
  });

  it('refuses bad values naming the option', () => {
    expect(
      errorOf(ImageBindError, () => resolveOptions({ addresses: 'h:1', retry: { maxAttempts: 0 } })).field,
    ).toBe('retry.maxAttempts');
    expect(
      errorOf(ImageBindError, () => resolveOptions({ addresses: 'h:1', retry: { initialBackoffMs: -1 } }))
        .field,
    ).toBe('retry.initialBackoffMs');
    expect(errorOf(ImageBindError, () => resolveOptions({ addresses: 'h:1', timeoutMs: 0 })).field).toBe(
      'timeoutMs',
    );
    expect(errorOf(ImageBindError, () => resolveOptions({ addresses: 'h:1', apiKey: 'a\nb' })).field).toBe(
      'apiKey',
    );
    expect(
      errorOf(ImageBindError, () => resolveOptions({ addresses: 'h:1', maxMessageBytes: 1.5 })).field,
    ).toBe('maxMessageBytes');
    expect(errorOf(ImageBindError, () => resolveOptions(undefined as never)).message).toContain('addresses');
  });
});
