"""``python -m vsslzoo.training``: pretraining recipes and checkpoint tools.

    python -m vsslzoo.training convert ctp CHECKPOINT.pth -o DIR [--data k400|ucf101]
    python -m vsslzoo.training eval retrieval|linear --model DIR ...

    python -m vsslzoo.training ctp --data DATA --preset k400 --out runs/ctp   # see ctp --help
    python -m vsslzoo.training paramcrop|ca|corp ...                           # see --help

A recipe is the ``main`` of ``training/<recipe>/train.py``; one whose module is missing
says it is not part of this release.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

RECIPES = ("ctp", "paramcrop", "ca", "corp")
RECIPE_TITLES = {"ctp": "CtP", "paramcrop": "ParamCrop", "ca": "Controllable Augmentations",
                 "corp": "CORP_f / CORP_m"}


def _recipe_released(recipe: str) -> bool:
    try:
        return importlib.util.find_spec(f"{__package__}.{recipe}.train") is not None
    except ModuleNotFoundError:  # the recipe's package itself is missing
        return False


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
    evaluate = commands.add_parser("eval", help="downstream evaluation of a model folder")
    evaluate.add_argument("protocol", choices=["retrieval", "linear"])
    evaluate.add_argument("--model", required=True, help="model folder, zoo name or hf-hub:")
    evaluate.add_argument("--gallery", help="retrieval: CSV path,label (e.g. train split)")
    evaluate.add_argument("--queries", help="retrieval: CSV path,label (e.g. test split)")
    evaluate.add_argument("--train", help="linear: CSV path,label to fit on")
    evaluate.add_argument("--test", help="linear: CSV path,label to score")
    evaluate.add_argument("--no-centre", action="store_true", help="retrieval: no centring")
    evaluate.add_argument("--epochs", type=int, default=300, help="linear: training epochs")
    evaluate.add_argument("--workers", type=int, default=0, help="decoding processes")
    for recipe in RECIPES:
        released = _recipe_released(recipe)
        commands.add_parser(recipe, add_help=False, help=f"{RECIPE_TITLES[recipe]} pretraining"
                            + (" (see --help)" if released else " (not in this release yet)"))
    args, rest = parser.parse_known_args(argv)
    if args.command in RECIPES:
        if not _recipe_released(args.command):
            print(f"error: the {args.command} pretraining recipe is not part of this release "
                  "of vsslzoo yet", file=sys.stderr)
            return 2
        from vsslzoo.errors import VsslzooError

        recipe = importlib.import_module(f".{args.command}.train", __package__)
        try:
            recipe.main(rest)
        except VsslzooError as exc:  # bad --data, nothing decodable, ...: one clear line
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    from vsslzoo.errors import VsslzooError

    if args.command == "eval":
        try:
            return _evaluate(args, parser)
        except VsslzooError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
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


def _evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import json

    import vsslzoo
    from vsslzoo.evaluate import evaluate_retrieval, read_labelled_csv

    model = vsslzoo.load(args.model)
    if args.protocol == "retrieval":
        if not (args.gallery and args.queries):
            parser.error("eval retrieval needs --gallery and --queries")
        result = evaluate_retrieval(model, args.gallery, args.queries,
                                    centre=not args.no_centre, workers=args.workers)
        print(json.dumps({"protocol": "retrieval", "model": args.model,
                          "recall": {f"R@{k}": v for k, v in result.recall.items()},
                          "queries": result.queries, "gallery": result.gallery,
                          "failed": len(result.failed)}, indent=2))
        return 0
    if not (args.train and args.test):
        parser.error("eval linear needs --train and --test")
    from .evaluate import linear_probe, video_features

    train_x, train_y, failed_train = video_features(model, read_labelled_csv(args.train),
                                                    workers=args.workers)
    test_x, test_y, failed_test = video_features(model, read_labelled_csv(args.test),
                                                 workers=args.workers)
    result = linear_probe(train_x, train_y, test_x, test_y, epochs=args.epochs)
    print(json.dumps({"protocol": "linear", "model": args.model,
                      "top1": result.test_accuracy, "train_top1": result.train_accuracy,
                      "classes": len(result.classes), "train_videos": result.train_videos,
                      "test_videos": result.test_videos,
                      "failed": len(failed_train) + len(failed_test)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
