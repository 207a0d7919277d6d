"""Load generator of the throughput benchmark: one publishing client, one consuming client, each its own process
(as a sender and a recipient are), both over AMQPS with their own certificate.

    python -m tests.bench.loadgen consume --queue Q --count N --run R --out times.json ...   # prints "consuming"
    python -m tests.bench.loadgen publish --exchange X --routing-key K --bodies FILE --out times.json ... # "publishing"

Times are ``time.monotonic()`` (CLOCK_MONOTONIC: one clock for every process of the machine), so the parent
can pair a message's send time with its receive time.  Bodies carry their index in their distributionID
(``_bench-<run>-<index>``), so the consumer finds it without parsing the message.  Each role prints one line
once connected (``consuming``, ``publishing``) and reports the CPU it spent from then on: the work, without the
interpreter's start-up and the TLS handshake.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import ssl
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from time import monotonic, process_time
from typing import cast

import aio_pika
from aiormq import Channel
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

_LENGTH = struct.Struct(">I")


def write_bodies(path: Path, bodies: list[bytes]) -> None:
    with open(path, "wb") as out:
        for body in bodies:
            out.write(_LENGTH.pack(len(body)))
            out.write(body)


def read_bodies(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        (size,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        yield data[offset:offset + size]
        offset += size


def bench_id(sender: str, run: str, index: int) -> str:
    return f"{sender}_bench-{run}-{index:08d}"


async def channel_of(args: argparse.Namespace) -> tuple[aio_pika.abc.AbstractConnection, Channel]:
    context = ssl.create_default_context(cafile=args.ca)
    context.load_cert_chain(args.cert, args.key)
    connection = await aio_pika.connect(args.url, ssl_context=context)
    channel = await connection.channel(publisher_confirms=True)
    return connection, cast(Channel, await channel.get_underlay_channel())


async def publish(args: argparse.Namespace) -> None:
    """Publishes every body persistent, ``mandatory``, with up to ``window`` unconfirmed; at ``rate`` msg/s if
    given, else as fast as confirms allow."""
    bodies = list(read_bodies(Path(args.bodies)))
    connection, channel = await channel_of(args)
    headers = dict(header.split("=", 1) for header in args.header)
    properties = Basic.Properties(content_type="application/json", delivery_mode=2, headers=headers or None,
                                  expiration=args.expiration)
    window = asyncio.Semaphore(args.window)
    send_times = [0.0] * len(bodies)
    refused = 0

    async def one(body: bytes) -> None:
        nonlocal refused
        try:
            confirmation = await channel.basic_publish(body, exchange=args.exchange, routing_key=args.routing_key,
                                                       properties=properties, mandatory=True, wait=False)
            if not isinstance(confirmation, Basic.Ack):
                refused += 1
        finally:
            window.release()

    tasks = set()
    print("publishing", flush=True)
    cpu_at_start = process_time()
    started = monotonic()
    for index, body in enumerate(bodies):
        if args.rate:
            delay = started + index / args.rate - monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await window.acquire()
        send_times[index] = monotonic()
        task = asyncio.create_task(one(body))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    finished = monotonic()
    await connection.close()
    Path(args.out).write_text(json.dumps({"send_times": send_times, "confirmed_at": finished, "refused": refused,
                                          "cpu_seconds": process_time() - cpu_at_start}))
    if refused:
        sys.exit(f"{refused} publishes were returned or refused")


async def consume(args: argparse.Namespace) -> None:
    """Consumes until ``count`` distinct bench messages arrived; records when each arrived first."""
    connection, channel = await channel_of(args)
    await channel.basic_qos(prefetch_count=args.prefetch)
    index_of = re.compile(rb"_bench-" + re.escape(args.run.encode()) + rb"-(\d{8})")
    receive_times = [0.0] * args.count
    received = 0
    duplicates = 0
    done = asyncio.Event()

    async def on_message(message: DeliveredMessage) -> None:
        nonlocal received, duplicates
        now = monotonic()
        match = index_of.search(message.body)
        if match is not None:
            index = int(match.group(1))
            if receive_times[index]:
                duplicates += 1
            else:
                receive_times[index] = now
                received += 1
        # One ack per message, as a hub client does (the broker may confirm a persistent message once the
        # consumer acked it: batching acks here would slow the publisher's confirms).
        assert message.delivery_tag is not None
        await channel.basic_ack(message.delivery_tag, wait=False)
        if received >= args.count:
            done.set()

    cpu_at_start = process_time()
    await channel.basic_consume(args.queue, on_message)
    print("consuming", flush=True)
    await done.wait()
    await connection.close()
    Path(args.out).write_text(json.dumps({"receive_times": receive_times, "duplicates": duplicates,
                                          "cpu_seconds": process_time() - cpu_at_start}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["publish", "consume"])
    for name in ("url", "ca", "cert", "key", "out"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--exchange")
    parser.add_argument("--routing-key")
    parser.add_argument("--bodies")
    parser.add_argument("--header", action="append", default=[], help="name=value, repeatable")
    parser.add_argument("--expiration")
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--queue")
    parser.add_argument("--count", type=int)
    parser.add_argument("--run", default="")
    parser.add_argument("--prefetch", type=int, default=512)
    args = parser.parse_args()
    asyncio.run(publish(args) if args.role == "publish" else consume(args))


if __name__ == "__main__":
    main()
