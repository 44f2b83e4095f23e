"""bnport's command line. Parsing imports no framework, so ``--help`` and ``--version`` answer at once.

Exit codes: 0 success; 1 the models drift (a comparison failed); 2 bad input or usage; 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from bnport._version import __version__
from bnport.cli.exit_codes import EXIT_DRIFT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

__all__ = ["EXIT_DRIFT", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main", "run"]


class _Parser(argparse.ArgumentParser):
    """An argument parser that remembers its option strings, to suggest the closest one for a typo."""

    def __init__(self, *args, **kwargs) -> None:
        self.option_names: list[str] = []  # before argparse adds --help
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        action = super().add_argument(*args, **kwargs)
        self.option_names += [s for s in action.option_strings if s.startswith("--")]
        return action


def _check_options(commands: dict, argv: Sequence[str]) -> None:
    """Refuse an option the command does not have, naming the closest one (argparse would first complain about a
    missing required option, or print the top-level usage)."""
    import difflib

    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in commands:
        return
    known = commands[command].option_names
    for token in argv[: list(argv).index("--") if "--" in argv else len(argv)]:
        name = token.split("=", 1)[0]
        if not name.startswith("--") or name in known or any(k.startswith(name) for k in known):
            continue  # argparse takes an unambiguous prefix
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else f"; see bnport {command} --help"
        commands[command].error(f"unknown option {name}{hint}")


def _add_models(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("--torch-model", required=required, metavar="FACTORY",
                   help="MODULE:FACTORY or path/to/file.py:FACTORY building the PyTorch model")
    p.add_argument("--torch-weights", metavar="FILE", help="PyTorch state dict (.pt/.pth/.bin/.safetensors)")
    p.add_argument("--keras-model", required=required, metavar="FILE_OR_FACTORY",
                   help="a .keras file (loaded in safe mode) or MODULE:FACTORY building the Keras model")
    p.add_argument("--keras-weights", metavar="FILE", help="Keras weights (.weights.h5, legacy .h5, .keras)")
    _add_checkpoint_key(p)


def _add_checkpoint_key(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint-key", metavar="KEY",
                   help="entry of a PyTorch checkpoint holding the state dict to use, e.g. state_dict_ema (default: "
                        "the main state dict; an EMA copy beside it is said in a note)")


def _add_backend(p: argparse.ArgumentParser) -> None:
    from bnport.adapters.keras.startup import BACKENDS  # the standard library only

    p.add_argument("--keras-backend", choices=BACKENDS, metavar="BACKEND",
                   help="Keras backend to run on: tensorflow, jax or torch (default: KERAS_BACKEND or keras.json, as "
                        "Keras reads them; torch when neither says and TensorFlow is not installed)")


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise argparse.ArgumentTypeError(f"a shape is positive sizes separated by commas, e.g. 2,3,224,224. "
                                         f"Received: {text!r}")
    return shape


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (no framework imported)."""
    parser = argparse.ArgumentParser(
        prog="bnport",
        description="Port trained weights between PyTorch and Keras 3 (BatchNorm first) and prove it "
        "through ONNX Runtime.",
        epilog="exit codes: 0 ok, 1 models drift, 2 bad input or usage",
    )
    parser.add_argument("--version", action="version", version=f"bnport {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("explain", help="say why the BatchNorm layers of a PyTorch and a Keras model differ")
    _add_models(p, required=True)
    p.add_argument("--inputs", metavar="FILE.npz", help="channels-first inputs, one array per BatchNorm pair "
                   "in order (default: seeded samples around each layer's statistics)")

    p = sub.add_parser("convert", help="port a checkpoint file to the other framework's format",
                       epilog="Keras on the torch backend converts fastest: it imports neither TensorFlow nor JAX "
                              "(docs/performance.md has the figures per backend).")
    p.add_argument("src", metavar="SRC", help="source checkpoint (.pt/.pth/.bin/.safetensors, a shard index "
                   "*.index.json or a hub folder; .keras/.weights.h5/.h5)")
    p.add_argument("dst", metavar="DST", help="destination checkpoint, of the other framework")
    p.add_argument("--torch-model", required=True, metavar="FACTORY",
                   help="MODULE:FACTORY or path/to/file.py:FACTORY building the PyTorch model")
    p.add_argument("--keras-model", metavar="FILE_OR_FACTORY",
                   help="a .keras file or MODULE:FACTORY building the Keras model (optional when SRC is .keras)")
    p.add_argument("--map", metavar="FILE", help="JSON/YAML mapping of layer names (pairs and regex rules)")
    _add_checkpoint_key(p)
    p.add_argument("--force", action="store_true", help="replace DST if it exists")
    p.add_argument("--non-strict", action="store_true", help="port what pairs up and report the rest")
    p.add_argument("--allow-bad-stats", action="store_true",
                   help="port non-finite values and negative variances instead of refusing them")
    p.add_argument("--verify", action="store_true",
                   help="then verify the written file against SRC in the same process (exit codes as verify's)")
    p.add_argument("--input-shape", metavar="N,C,...", action="append", type=_shape,
                   help="with --verify: channels-first shape of the drawn inputs, as for verify")
    p.add_argument("--json", metavar="FILE", help="with --verify: write the verify report as JSON")

    p = sub.add_parser("inspect", help="list the BatchNorm and other weight-holding layers of a checkpoint")
    p.add_argument("file", metavar="FILE", help="any supported checkpoint")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("verify", help="compare a PyTorch and a Keras model layer by layer through ONNX Runtime",
                       description="Exit 0 when every comparison passes, 1 when the models drift, 2 on bad input.")
    _add_models(p, required=True)
    p.add_argument("--inputs", metavar="FILE.npz", help="channels-first inputs: one array per model input, named as "
                   "the Keras model's inputs or in their order; default: seeded inputs of the Keras model's input "
                   "shapes (integer inputs below the vocabulary of the Embedding they feed)")
    p.add_argument("--input-shape", metavar="N,C,...", action="append", type=_shape,
                   help="channels-first shape, batch included, of the drawn inputs (once per model input), for a "
                        "model whose input shape leaves sizes open")
    p.add_argument("--batch", type=int, default=2, metavar="N", help="batch size of the drawn inputs (default 2)")
    p.add_argument("--map", metavar="FILE", help="JSON/YAML mapping of layer names (pairs and regex rules)")
    p.add_argument("--no-per-layer", action="store_true", help="compare the final outputs only")
    p.add_argument("--atol", type=float, help="absolute tolerance (replaces the derived one)")
    p.add_argument("--rtol", type=float, help="tolerance relative to each output's largest magnitude")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON (schema bnport-verify-report/1)")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML, one test case per compared pair")
    p.add_argument("--html", metavar="FILE", help="write an HTML report with a chart of error vs tolerance")

    p = sub.add_parser("demo", help="port the bundled fixture, check it through ONNX Runtime, explain a naive port")
    p.add_argument("--fixtures", metavar="DIR", help="folder of the bundled fixtures (default: the repository's)")
    p.add_argument("--out", metavar="DIR", default="out", help="where the ported files go (default: ./out)")
    for command in sub.choices.values():
        _add_backend(command)
        command.add_argument("--quiet", action="store_true",
                             help="no progress bar (one is drawn only when stderr is a terminal)")
    parser.commands = sub.choices  # name -> subcommand parser, for the option check
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    _check_options(parser.commands, argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ logging: the CLI prints its own
    from bnport.cli import native_logs

    with native_logs.filtered():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from bnport.errors import BnportError

    try:
        _check_outputs(args)
        if _needs_keras(args):
            from bnport.adapters.keras import startup
            from bnport.cli.process import importing_frameworks

            _, note = startup.choose_backend(args.keras_backend)
            if note:
                print(f"bnport: {note}", file=sys.stderr)
            with importing_frameworks():
                startup.import_keras_quietly()
        from bnport.cli import commands

        return getattr(commands, args.command)(args)
    except BnportError as exc:
        print(f"bnport: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("bnport: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


#: the options that name a report file to write, per command (``inspect --json`` is a flag: it prints)
REPORT_FILES = {"verify": ("json", "junit", "html"), "convert": ("json",)}


def _check_outputs(args: argparse.Namespace) -> None:
    """Report files asked for are checked before any work: a verification is not run to be lost at the end."""
    from pathlib import Path

    from bnport.errors import BnportError
    from bnport.io.atomic import check_destination

    for option in REPORT_FILES.get(args.command, ()):
        path = getattr(args, option)
        if path is not None:
            try:
                check_destination(Path(path), force=True)
            except BnportError as exc:
                raise type(exc)(f"--{option}: {exc}") from None


def _needs_keras(args: argparse.Namespace) -> bool:
    if args.command == "inspect":
        from bnport.io.formats import is_torch_source

        return not is_torch_source(args.file)
    return True


def run() -> None:
    """Console-script entry point (``bnport``, ``python -m bnport``): the process is the command line's own
    (:func:`bnport.cli.process.own`), and ends without the interpreter's teardown once every exit handler has run."""
    from bnport.cli import process

    process.own()
    process.exit_after_handlers(main())
