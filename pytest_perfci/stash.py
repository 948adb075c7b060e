"""The pytest stash keys (and report properties) that more than one module reads: the run's settings and
provider session, and the target a test id runs on.

Why not in plugin.py: the results plugin reads both; importing the keys from plugin.py made results
import the plugin back (inside functions, to dodge the import circle). Keys that one module sets and
reads stay in that module (results.plugin's own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_perfci.settings import Settings

if TYPE_CHECKING:
    from pytest_perfci.session import ProviderSession  # noqa: F401 - the StashKey["ProviderSession"] forward ref

# config.stash, set by pytest_perfci.plugin at configure time
SETTINGS_KEY = pytest.StashKey[Settings]()
SESSION_KEY = pytest.StashKey["ProviderSession"]()

# item.user_properties, set by pytest_perfci.plugin at collection: the target a test id runs on, so a
# test skipped before any fixture ran still names it (results.plugin writes "not run" columns from it)
TARGET_PROPERTY = "perfci_target"
