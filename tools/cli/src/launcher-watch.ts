// Preloaded (`node --require`) into every service `ibllm serve` starts, before the service's own
// code: ties the service's life to its launcher from its first instruction. The launcher holds the
// other end of the IPC channel; when it dies — even by SIGKILL — the channel closes. A service that
// already handles that (closeOnSignals: drain, exit 0) is left to it; one still booting (loading
// modules, waiting for Redis, building the Nest app) has no handler yet, and would otherwise miss
// the event and live on as an orphan, so it gets SIGTERM: the default action before any handler
// exists, a drain after.
if (process.send !== undefined) {
  process.once('disconnect', () => {
    if (process.listenerCount('disconnect') === 0) process.kill(process.pid, 'SIGTERM');
  });
  // Watching the channel must not keep a process alive that would otherwise exit.
  process.channel?.unref();
}
