"""The `relight` command. Each subcommand imports its heavy modules only when it runs, so
`relight --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path


def _add_convert(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="the released model.pth (a plain PyTorch state dict)")
    parser.add_argument("target", type=Path, help="the Relight checkpoint to write (.safetensors)")


def _run_convert(args: argparse.Namespace) -> int:
    from .checkpoints import convert_file

    config = convert_file(args.source, args.target)
    print(f"wrote {args.target} ({config.name} config)")
    return 0


def _add_conformance(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="a folder of reference vectors (README, run_info.json, *.safetensors)")


def _run_conformance(args: argparse.Namespace) -> int:
    from .conformance import run_conformance

    results = run_conformance(args.folder, progress=lambda step: print(f"# {step}", file=sys.stderr, flush=True))
    for result in results:
        print(result.line())
    failed = [r for r in results if not r.passed]
    print(f"{len(results) - len(failed)} of {len(results)} tensors pass", file=sys.stderr)
    return 1 if failed else 0


def _add_inspect(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a Relight checkpoint, a released model.pth or an EG3D-style .pkl")


def _run_inspect(args: argparse.Namespace) -> int:
    from .checkpoints import inspect_file

    print(inspect_file(args.file))
    return 0


# name -> (module, prefix of its argument and run functions, help). Modules load only when needed.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("relight_core.demo", "", "relight the built-in portrait under light presets and an orbit of cameras"),
    "plate": ("relight_core.plate", "", "relight the person in a video plate and write passes (resumable)"),
    "convert": (__name__, "convert", "convert the released model.pth into a Relight checkpoint"),
    "conformance": (__name__, "conformance", "compare this network with reference outputs of the release"),
    "inspect": (__name__, "inspect", "say what a weights file holds, without running code from it"),
    "bench": ("relight_core.eval.bench", "", "time the network per stage and per frame"),
    "build-ext": ("relight_core.models.kernels", "build_ext", "compile the fused CUDA kernels of cuda_ext/"),
    "mesh": ("relight_core.mesh", "", "extract the head in a portrait as a coloured mesh (PLY, OBJ, GLB)"),
    "eval": ("relight_core.eval.quality", "", "measure quality: synthetic heads, real portraits, a clip, against baselines"),
    "train": ("relight_core.train.__main__", "", "train a network from a TOML configuration (resumes by itself)"),
}


def _functions(name: str):
    """(add_arguments, run) of a subcommand."""
    module_name, prefix, _ = COMMANDS[name]
    module = importlib.import_module(module_name)
    if prefix:
        return getattr(module, f"_add_{prefix}"), getattr(module, f"_run_{prefix}")
    return module.add_arguments, module.run


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only the `selected` subcommand's module is imported for its options."""
    parser = argparse.ArgumentParser(prog="relight", description="3D-aware relighting of people in video.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, _, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            _functions(name)[0](sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    selected = argv[0] if argv and argv[0] in COMMANDS else None
    args = build_parser(selected).parse_args(argv)
    try:
        return _functions(args.command)[1](args)
    except KeyboardInterrupt:
        print("relight: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as error:
        print(f"relight {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
