/**
 * A fake that implements only the members a test gives it and throws on any other access, so a
 * test never passes because an unexpected call quietly returned undefined.
 */
export function strictFake<T extends object>(name: string, members: Partial<T>): T {
  return new Proxy(members as T, {
    get(target, property, receiver) {
      if (property in target) return Reflect.get(target, property, receiver) as unknown;
      // Promise resolution probes `then`; a fake is not a thenable.
      if (property === 'then') return undefined;
      throw new Error(`strict fake ${name}: unexpected access to ${String(property)}`);
    },
  });
}
