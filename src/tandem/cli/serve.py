"""`tandem serve`: translate over HTTP (FastAPI on uvicorn), with micro-batching and limits."""

from __future__ import annotations

import argparse
import dataclasses
import signal
from pathlib import Path

from tandem.errors import TandemError

HELP = {  # ServeSettings field -> its flag's help
    "max_batch_size": "sentences decoded in one batch",
    "max_wait_ms": "how long a batch that is not full waits for more requests (milliseconds; "
    "0 decodes what is queued at once)",
    "max_beam_size": "widest beam_size a request may ask for; wider get 422",
    "max_decode_length": "largest max_length a request may ask for (tokens); larger get 422",
    "max_queue": "requests waiting at most; more get 503 with Retry-After",
    "max_body_bytes": "largest request body in bytes; larger get 413",
    "max_inputs": "most texts in one request; more get 422",
    "max_input_chars": "most characters in one text; more get 422",
    "decode_timeout_s": "longest a request waits for its translations (seconds); then 504",
}


def add_parser(commands) -> None:
    from tandem.serve.settings import ServeSettings

    parser = commands.add_parser(
        "serve", help="serve models over HTTP: an API, OpenAPI docs at /docs and a page at /"
    )
    parser.add_argument(
        "models",
        nargs="+",
        metavar="[NAME=]MODEL_DIR",
        help="model directories written by tandem train, each named NAME or by its folder",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    for field in dataclasses.fields(ServeSettings):
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            type=type(field.default),
            default=field.default,
            help=f"{HELP[field.name]} (default: %(default)s)",
        )
    parser.set_defaults(run=run)


def model_dirs(specs: list[str]) -> dict[str, str]:
    """`[NAME=]MODEL_DIR` arguments -> {name: directory}; names must differ."""
    named: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).resolve().name, spec
        if not name or not path:
            raise TandemError(f"{spec!r}: give MODEL_DIR or NAME=MODEL_DIR")
        if name in named:
            raise TandemError(f"two models are named {name!r}: name them with NAME=MODEL_DIR")
        named[name] = path
    return named


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from tandem.serve.app import create_app
    from tandem.serve.settings import ServeSettings
    from tandem.translator import Translator

    names = [field.name for field in dataclasses.fields(ServeSettings)]
    try:
        settings = ServeSettings(**{name: getattr(args, name) for name in names})
    except ValueError as exc:
        raise TandemError(f"--{str(exc).replace('_', '-')}") from None
    models = {name: Translator.from_dir(path) for name, path in model_dirs(args.models).items()}
    app = create_app(models, settings)
    # uvicorn's SIGTERM: stop accepting, answer the requests in flight, then the app's
    # shutdown decodes what the batcher still holds. uvicorn then raises the signal again
    # with the handler it found: a no-op here, so that a graceful stop exits 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
