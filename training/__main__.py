"""``python -m vsslzoo.training``: pretraining recipes and checkpoint tools.

    python -m vsslzoo.training convert ctp CHECKPOINT.pth -o DIR [--data k400|ucf101]

    python -m vsslzoo.training ctp --data DATA --preset k400 --out runs/ctp   # see ctp --help

The other recipes (``paramcrop``, ``ca``, ``corp``) are not part of this release yet;
asking for one says so.
"""

from __future__ import annotations

import argparse
import sys

RECIPES = ("ctp", "paramcrop", "ca", "corp")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vsslzoo.training",
                                     description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="convert a published checkpoint")
    convert.add_argument("method", choices=["ctp"])
    convert.add_argument("checkpoint")
    convert.add_argument("-o", "--output", required=True, help="model folder to write")
    convert.add_argument("--data", choices=["k400", "ucf101"], default="k400",
                         help="the checkpoint's pretraining data (default: k400)")
    convert.add_argument("--bn-eps", type=float, default=1e-3,
                         help="BatchNorm eps (CtP trained with 1e-3)")
    convert.add_argument("--trust-pickle", action="store_true",
                         help="allow Python objects in the checkpoint (only for files you trust)")
    commands.add_parser("ctp", help="CtP pretraining (see --help)", add_help=False)
    for recipe in RECIPES[1:]:
        commands.add_parser(recipe, help=f"{recipe} pretraining (not in this release yet)",
                            add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "ctp":
        from .ctp.train import main as ctp_main

        ctp_main(rest)
        return 0
    if args.command in RECIPES:
        print(f"error: the {args.command} pretraining recipe is not part of this release of "
              "vsslzoo yet", file=sys.stderr)
        return 2
    from vsslzoo.errors import VsslzooError

    from .ctp.convert import convert_ctp

    try:
        report = convert_ctp(args.checkpoint, args.output, data=args.data,
                             bn_eps=args.bn_eps, trust_pickle=args.trust_pickle)
    except VsslzooError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {report.folder}: {report.architecture} {report.model_args} from the "
          f"{report.layout} layout; dropped {len(report.dropped)} non-backbone tensor(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
