"""Micro-benchmark of the dispatcher's pure core (not a test): per-message cost of ``Pipeline.process``.

    .venv/bin/python tests/bench/bench_pipeline.py [--number 2000]

For an RC-EDA and an RS-EDA message of about 7 KB (model 3.4.1, pretty-printed JSON as clients send it):
JSON->JSON, JSON->XML and XML->JSON, with the bundle's full-message JSON validator being jsonschema-rs (what
the dispatcher uses), pure-Python jsonschema, and fastjsonschema when it is installed and can compile the
bundle.  Prints one table; the target is JSON->JSON with full validation well under 0.3 ms per message.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

from hub_dispatcher.bundle import ModelBundle  # noqa: E402
from hub_dispatcher.message import Inbound  # noqa: E402
from hub_dispatcher.outcome import Forward  # noqa: E402
from hub_dispatcher.pipeline import Pipeline  # noqa: E402
from hub_dispatcher.preferences import Preferences  # noqa: E402
from hub_dispatcher.settings import DispatcherSettings  # noqa: E402
from hub_dispatcher.xmlcodec import to_bytes  # noqa: E402
from tests.helpers.hubsante_models import bundle_dir, envelope, json_examples  # noqa: E402

VERSION = "3.4.1"
SENDER, JSON_RECIPIENT, XML_RECIPIENT = "fr.health.samu050", "fr.health.samu076", "fr.fire.nexsis.sdis76"
XML_SENDER = "fr.fire.nexsis.sdis50"


class _IsValid:
    """Stands in for the bundle's compiled full-message validator (only ``is_valid`` is on the hot path)."""

    def __init__(self, is_valid: Callable[[Any], bool]) -> None:
        self.is_valid = is_valid


def _schemas(bundle: ModelBundle) -> dict[str, dict[str, Any]]:
    from hub_dispatcher.bundle import _read_json_schemas

    return _read_json_schemas(bundle.directory / "json-schema")


def jsonschema_validator(bundle: ModelBundle) -> _IsValid:
    import jsonschema
    from referencing import Registry, Resource

    schemas = _schemas(bundle)
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas.values())
    validator = jsonschema.Draft7Validator(schemas["EDXL-DE-full.schema.json"], registry=registry,
                                           format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    return _IsValid(validator.is_valid)


def fastjsonschema_validator(bundle: ModelBundle) -> _IsValid:
    import fastjsonschema

    schemas = {schema["$id"]: schema for schema in _schemas(bundle).values()}
    full = next(schema for uri, schema in schemas.items() if uri.endswith("EDXL-DE-full.schema.json"))
    validate = fastjsonschema.compile(full, handlers={"https": lambda uri: schemas[uri]}, formats={})

    def is_valid(document: Any) -> bool:
        try:
            validate(document)
            return True
        except fastjsonschema.JsonSchemaException:
            return False

    return _IsValid(is_valid)


def pipeline_with(bundle: ModelBundle, validator: Any | None) -> Pipeline:
    if validator is not None:
        bundle = ModelBundle.load(bundle.directory)
        bundle._full = validator  # noqa: SLF001 - the benchmark swaps the engine under test
    return Pipeline(
        settings=DispatcherSettings(vhost="15-15_v2.0", bundle_dir=bundle.directory),
        bundle=bundle,
        preferences=Preferences.from_mapping({}),
    )


def largest(model: str) -> dict[str, Any]:
    examples = [e for e in json_examples(VERSION) if e.path.parent.name == model]
    return max((e.use_case() for e in examples), key=lambda use_case: len(orjson.dumps(use_case)))


def per_message_ms(pipeline: Pipeline, inbound: Inbound, number: int) -> float:
    outcome = pipeline.process(inbound)
    assert isinstance(outcome, Forward), getattr(outcome, "cause", outcome)
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(number):
            pipeline.process(inbound)
        rounds.append((time.perf_counter() - start) / number * 1000)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000, help="messages per timing round (5 rounds, median)")
    number = parser.parse_args().number
    bundle = ModelBundle.load(bundle_dir(VERSION))

    engines: dict[str, Callable[[], Pipeline]] = {
        "jsonschema-rs": lambda: pipeline_with(bundle, None),
        "jsonschema (pure Python)": lambda: pipeline_with(bundle, jsonschema_validator(bundle)),
        "fastjsonschema": lambda: pipeline_with(bundle, fastjsonschema_validator(bundle)),
    }
    cases: list[tuple[str, str, Inbound]] = []
    for model in ("RC-EDA", "RS-EDA"):
        use_case = largest(model)
        to_json = envelope(use_case, sender=SENDER, recipient=JSON_RECIPIENT)
        to_xml = envelope(use_case, sender=SENDER, recipient=XML_RECIPIENT)
        from_xml = envelope(use_case, sender=XML_SENDER, recipient=JSON_RECIPIENT,
                            distribution_id=f"{XML_SENDER}_bench")
        pretty = orjson.OPT_INDENT_2
        cases += [
            (model, "JSON->JSON", Inbound(orjson.dumps(to_json, option=pretty), SENDER, "application/json", 2)),
            (model, "JSON->XML", Inbound(orjson.dumps(to_xml, option=pretty), SENDER, "application/json", 2)),
            (model, "XML->JSON", Inbound(to_bytes(bundle.codec.json_to_xml(from_xml)), XML_SENDER,
                                         "application/xml", 2)),
        ]

    print(f"model bundle {VERSION}, {number} messages x 5 rounds, median ms per message (Pipeline.process)\n")
    header = f"{'message':8} {'path':11} {'bytes':>6} " + " ".join(f"{name:>26}" for name in engines)
    print(header)
    print("-" * len(header))
    pipelines: dict[str, Pipeline | str] = {}
    for name, build in engines.items():
        try:
            pipelines[name] = build()
        except Exception as error:  # an engine that cannot load these schemas is reported, not fatal
            pipelines[name] = f"n/a ({type(error).__name__})"
    for model, path, inbound in cases:
        cells = []
        for name in engines:
            candidate = pipelines[name]
            if isinstance(candidate, str):
                cells.append(f"{candidate:>26}")
                continue
            runs = number if name == "jsonschema-rs" else max(50, number // 20)
            try:
                cells.append(f"{per_message_ms(candidate, inbound, runs):>26.3f}")
            except AssertionError as error:
                cells.append(f"{'rejected: ' + str(error)[:14]:>26}")
        print(f"{model:8} {path:11} {len(inbound.body):>6} " + " ".join(cells))
    for name, candidate in pipelines.items():
        if isinstance(candidate, str):
            print(f"\n{name}: {candidate}")


if __name__ == "__main__":
    main()
