"""A child of the supervisor: ``python -m admin.child [-c FILE]`` runs the Admin API process or
one proxy worker, as the environment the supervisor set says (``gateway/workers/handoff.py``).
Not a command for people: ``ramparts start`` starts these."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import uvloop

from admin.cli import setup_logging
from gateway import registry
from gateway.settings.load import SettingsError, load
from gateway.workers.handoff import HandoffError, from_environment


def main() -> int:
    # SIGHUP is the supervisor's (it replaces the children one at a time); a terminal's
    # hang-up reaches the whole process group, so a child must not die of it
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    args = argparse.ArgumentParser(prog="admin.child")
    args.add_argument("-c", "--conf")
    conf = args.parse_args().conf
    try:
        ctx = from_environment()
        settings = load(conf)  # as the supervisor read it (SIGHUP: as it re-read it)
        reg = registry.build(settings.plugins, settings.plugin_path)
    except (HandoffError, SettingsError, registry.UnknownPlugin) as exc:
        print(f"ramparts child: {exc}", file=sys.stderr)
        return 1
    tag = "admin" if ctx.role == "admin" else f"worker {ctx.slot}"
    setup_logging(settings.log_level, f"{tag} pid {os.getpid()}")
    # each role imports only its own half (an interpreter start is most of a restart)
    if ctx.role == "admin":
        from admin.node import run_admin
        return uvloop.run(run_admin(settings, reg, ctx))
    from gateway.workers.worker import run_worker
    return uvloop.run(run_worker(settings, reg, ctx))


def exit_now(code: int) -> None:
    """Everything is closed and flushed by now; skip the interpreter's teardown, which
    takes seconds for a process this size (a drained worker should free its slot fast)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
