"""The handlers: claim -> run -> write for every step, the local runtime (worker pool, folder watcher,
sweeper) and the CLI. `functions` may import everything else; nothing imports `functions`."""
