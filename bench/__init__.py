"""The benchmark (`scripts/bench`): the stack against the servers a user might pick instead,
on this machine, through nginx; writes docs/benchmarks.md and its chart."""
