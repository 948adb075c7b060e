"""Make allure-pytest's file logger redact secrets in every file as it writes it.

The end-of-session sweep (allure.sweep) never runs after SIGKILL or a signal that ends the
process late, and CI uploads the results directory whatever happened: a private key printed by a
test, captured by allure-pytest as "stdout" and written at the test's end, would be published in
clear. So the one object that writes Allure files, allure_commons' AllureFileLogger, is re-registered
with its three writers wrapped: result/container JSON is scrubbed field by field before it is
serialised, attachment bodies and attached files before they reach the disk. Nothing unscrubbed is
ever written; the sweep stays as a second line for files others put there.

A write that fails (a full disk: OSError) loses that one file and is said once on stderr; it never
stops the run, whose teardown must still happen (issue 16).
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_perfci.results.scrub import scrub_bytes, scrub_text_count

_MARK = "_perfci_scrubbing"
_failed: list[str] = []  # the first write failure, said once per process


def _tolerant(write: Callable[..., None], *args: Any, **kw: Any) -> None:
    try:
        write(*args, **kw)
    except OSError as exc:
        if not _failed:
            _failed.append(str(exc))
            sys.stderr.write(f"perfci: Allure results are not being written ({type(exc).__name__}: "
                             f"{exc.strerror or exc}); the run goes on\n")


def _scrub_value(value: Any, counter: list[int]) -> Any:
    """Scrub every string inside an attrs/dict/list tree, in place where mutable; returns the value."""
    if isinstance(value, str):
        clean, n = scrub_text_count(value)
        counter[0] += n
        return clean
    if isinstance(value, dict):
        for k, v in value.items():
            value[k] = _scrub_value(v, counter)
        return value
    if isinstance(value, list):
        value[:] = [_scrub_value(v, counter) for v in value]
        return value
    fields = getattr(type(value), "__attrs_attrs__", None)
    if fields is not None:
        for f in fields:
            setattr(value, f.name, _scrub_value(getattr(value, f.name), counter))
    return value


def _write_file(source: Any, data: bytes, dest: Path) -> None:
    tmp = dest.with_name(f"{dest.name}.tmp")
    try:
        tmp.write_bytes(data)
        shutil.copystat(source, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def install(redactions: list[int]) -> int:
    """Wrap every registered AllureFileLogger (idempotent); returns how many were wrapped.

    ``redactions`` is a one-element counter the wrappers add to, so the end-of-run note can say how
    many secret-looking strings were redacted while writing."""
    import allure_commons
    from allure_commons.logger import AllureFileLogger

    pm = allure_commons.plugin_manager
    wrapped = 0
    for logger in list(pm.get_plugins()):
        if not isinstance(logger, AllureFileLogger) or getattr(logger, _MARK, False):
            continue
        name = pm.get_name(logger)
        pm.unregister(plugin=logger)
        report_dir = Path(logger._report_dir)
        original_item = logger._report_item
        original_data = logger.report_attached_data

        def report_item(item: Any, _orig: Any = original_item) -> None:
            _scrub_value(item, redactions)
            _tolerant(_orig, item)

        @functools.wraps(original_data)
        def report_attached_data(body: Any, file_name: str, _orig: Any = original_data) -> None:
            if isinstance(body, str):
                body, n = scrub_text_count(body)
            else:
                body, n = scrub_bytes(bytes(body))
            redactions[0] += n
            _tolerant(_orig, body=body, file_name=file_name)

        @functools.wraps(logger.report_attached_file)
        def report_attached_file(source: Any, file_name: str, _dir: Path = report_dir) -> None:
            data, n = scrub_bytes(Path(source).read_bytes())
            redactions[0] += n
            _tolerant(_write_file, source, data, _dir / file_name)

        # Instance attributes shadow the class's methods; functools.wraps copied the hookimpl marks,
        # so re-registering the same object (same name: allure's own cleanup unregisters by it) picks
        # the wrappers up as the hook implementations.
        logger._report_item = report_item  # type: ignore[method-assign]
        logger.report_attached_data = report_attached_data  # type: ignore[method-assign]
        logger.report_attached_file = report_attached_file  # type: ignore[method-assign]
        setattr(logger, _MARK, True)
        pm.register(logger, name)
        wrapped += 1
    return wrapped
