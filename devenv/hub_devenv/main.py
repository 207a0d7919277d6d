"""``python -m hub_devenv``: prepare, start and stop the local components."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import binaries, rabbitmq
from .environment import OPERATOR_PROCESS, DevEnvironment, recorded_processes, stop
from .paths import models_root, state_root
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
    commands.add_parser("demo", help="start the local environment, the operator, the examples and dispatchers, "
                        "then play a message end to end (docs: README.md)")
    commands.add_parser("down", help="stop what `up` / `demo` started")
    commands.add_parser("status", help="print how to reach the running environment")
    node = commands.add_parser("node", help="run the dispatcher pods of a namespace as local processes (the demo "
                               "starts it)")
    node.add_argument("--namespace", required=True)
    node.add_argument("--kubeconfig", type=Path, required=True)
    node.add_argument("--issuer-ca-dir", type=Path, default=None,
                      help="folder with ca.crt and ca.key: run the cert-manager stand-in with this CA")
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "prepare":
            prepare()
        elif arguments.command == "up":
            up()
        elif arguments.command == "demo":
            from . import demo

            return demo.main()
        elif arguments.command == "node":
            from . import localnode

            return localnode.main(arguments.namespace, state_root(), arguments.kubeconfig, models_root(),
                                  arguments.issuer_ca_dir)
        elif arguments.command == "down":
            stopped = stop(report=lambda name, seconds: print(f"stopped {name} ({seconds:.1f}s)", flush=True))
            if not stopped:
                print("nothing was running")
        elif arguments.command == "status":
            environment = DevEnvironment.load()
            print(environment.describe())
            processes = recorded_processes()
            print("processes      : " + ", ".join(f"{name} ({pid})" for name, pid in processes.items()))
            if OPERATOR_PROCESS in processes:
                from . import demo

                print(demo.explore_hint(environment).plain)
    except (ComponentFailed, RuntimeError) as failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    return 0
