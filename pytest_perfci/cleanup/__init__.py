"""Cleanup in three layers: in-process ledger and teardown, on-instance self-destruct, and the reaper."""
