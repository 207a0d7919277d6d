"""``python -m hub_devenv``: prepare, start and stop the local components."""

from __future__ import annotations

import argparse
import sys
import time

from . import binaries, rabbitmq
from .environment import DevEnvironment, stop
from .processes import ComponentFailed


def prepare() -> None:
    """Everything a test run needs on this machine, done once and cached."""
    started = time.monotonic()
    rabbitmq.ensure_installed()
    print(f"rabbitmq-server: {rabbitmq.RABBITMQ_BIN / 'rabbitmq-server'}")
    control_plane = binaries.control_plane_binaries()
    print(f"control plane  : {control_plane.kube_apiserver.parent}")
    tools = binaries.kube_tools()
    print(f"kubectl, helm  : {tools.kubectl.parent}")
    print(f"prepared in {time.monotonic() - started:.1f}s")


def up() -> DevEnvironment:
    environment = DevEnvironment.create()
    started = time.monotonic()
    environment.start()
    print(f"local environment started in {time.monotonic() - started:.1f}s")
    print(environment.describe())
    return environment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hub-devenv", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("prepare", help="install the broker package, build/cache the control plane binaries")
    commands.add_parser("up", help="start a local broker + Kubernetes API in the background")
    commands.add_parser("demo", help="start the local environment and play the demo")
    commands.add_parser("down", help="stop what `up` / `demo` started")
    commands.add_parser("status", help="print how to reach the running environment")
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "prepare":
            prepare()
        elif arguments.command in {"up", "demo"}:
            up()
        elif arguments.command == "down":
            stopped = stop()
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        elif arguments.command == "status":
            print(DevEnvironment.load().describe())
    except (ComponentFailed, RuntimeError) as failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    return 0
