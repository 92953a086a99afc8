"""`tandem export`: a model's encoder and decoder-step graphs as ONNX, for the runtime."""

from __future__ import annotations

import argparse
import json
import sys

from tandem.errors import TandemError


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "export",
        help="write a model's encoder and decoder-step graphs as ONNX, with its vocabularies "
        "and a manifest (needs the export extra)",
    )
    parser.add_argument("model_dir", help="model directory written by tandem train")
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="the export directory to create"
    )
    parser.add_argument(
        "--format", choices=("onnx",), default="onnx", help="the graphs' format (default: onnx)"
    )
    parser.add_argument(
        "--check-texts",
        metavar="FILE",
        help="sources (one per line) decoded with the model and with the exported graphs, "
        "which must agree (default: 8 made of the source vocabulary's tokens)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tandem.export import export_model

    texts = None
    if args.check_texts is not None:
        from tandem.data.reading import read_lines

        texts = [line for _, line in read_lines(args.check_texts) if line.strip()]
        if not texts:
            raise TandemError(f"{args.check_texts}: holds no text to check the export with")
    manifest = export_model(args.model_dir, args.output, check_texts=texts)
    files = [manifest["encoder"]["file"], manifest["decoder_step"]["file"]]
    print(json.dumps({"output": args.output, "files": files, **manifest["agreement"]}))
    print(f"{args.output}: exported; translate with tandem.runtime.OnnxTranslator", file=sys.stderr)
    return 0
