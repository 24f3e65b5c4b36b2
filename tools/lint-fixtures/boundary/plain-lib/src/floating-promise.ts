// FIXTURE: a promise nobody awaits (its rejection would crash the process). Lint must reject it.
async function save(): Promise<void> {
  await Promise.resolve();
}

export function handler(): void {
  save();
}
