"""Fault-injection campaigns against the broker adapters (a package: ``test_ibkr_faults`` also
names a module in ``tests/``)."""
