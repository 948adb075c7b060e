"""Cleanup in three layers: the ledger and session teardown, the on-instance self-destruct, the reaper.

Cloud-agnostic only: the ledger, signal shielding, the model and report, pure selection, and the
engine that runs resource kinds in order. The kinds themselves live with their providers
(providers/ec2/resources.py, providers/kops.py) and are found by name in cleanup/kinds.py.
"""
