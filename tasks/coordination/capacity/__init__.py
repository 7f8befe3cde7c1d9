"""Capacity: what each kind of run costs in CPU and RAM, and the live reservations of those costs
against the budgets of the hosts. `budget` is the pure arithmetic, `leases` the Redis-backed
reservations, `heartbeat` the background thread that keeps a lease or a host alive."""
