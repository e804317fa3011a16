"""`fipo`: the command line of the engine.

    fipo train CONFIG_OR_PRESET [--out DIR] [--set key.path=value ...] [--resume] [--dry-run]
               [--server URL --run-id ID --token T]
    fipo eval --model PATH --benchmark NAME_OR_FILE [--k 32 ...] | --responses FILE --benchmark ...
    fipo config schema | presets | show CONFIG_OR_PRESET [--set ...]
    fipo openrlhf-command CONFIG_OR_PRESET [--set ...]

Each sub-command lives in its own module with ``add_arguments(parser)`` and ``run(args) -> int``;
modules are imported only when their command runs, so ``fipo config schema`` needs no torch.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

# command -> (module, help). The module provides add_arguments(parser) and run(args).
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("fipo_engine.trainer.cli", "train a policy with FIPO/DAPO/GRPO from a config or preset"),
    "eval": ("fipo_engine.eval.cli", "evaluate a model or graded responses on a benchmark (Pass@1 = avg@k)"),
    "config": ("fipo_engine.cli", "print the config JSON Schema, the presets, or a resolved config"),
    "openrlhf-command": ("fipo_engine.integrations.openrlhf.command",
                         "print the OpenRLHF 0.11.2 train_ppo_ray command reproducing a config"),
}


# ---- `fipo config` lives here: it is small and must not import torch ------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="config_command", required=True)
    sub.add_parser("schema", help="JSON Schema of the run config")
    sub.add_parser("presets", help="names and titles of the presets")
    show = sub.add_parser("show", help="the full resolved config of a preset or file")
    show.add_argument("config", help="preset name or path to a JSON config")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")


def run(args: argparse.Namespace) -> int:
    from fipo_engine.config import PRESETS, ConfigError, json_schema, load_config

    if args.config_command == "schema":
        print(json.dumps(json_schema(), indent=2))
    elif args.config_command == "presets":
        for name, (title, _) in PRESETS.items():
            print(f"{name:14s} {title}")
    else:
        try:
            print(load_config(args.config, args.overrides).to_json())
        except ConfigError as exc:
            print(f"fipo: invalid config: {exc}", file=sys.stderr)
            return 2
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(prog="fipo", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    modules: dict[str, object] = {}
    wanted = sys.argv[1] if len(sys.argv) > 1 else None
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        # Import only the module of the command being run (and all of them for --help).
        if wanted in (name, None, "-h", "--help"):
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            modules[name] = module
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    if argv is not None:
        sys.argv = ["fipo", *argv]
    parser, modules = build_parser()
    args = parser.parse_args()
    return int(modules[args.command].run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
