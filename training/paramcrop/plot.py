"""Figure 5 of the paper for a run: IoU (dashed) and 3D centre Manhattan distance (solid)
between the two views' crops, over training steps, from ``RUN/metrics.jsonl``.

    python -m vsslzoo.training.paramcrop.plot RUN [-o RUN/disparity.png]

Needs matplotlib (the ``train`` extra). A run without it logs the same curves to
metrics.jsonl and says how to draw them afterwards with this command.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def read_curves(metrics: str | Path) -> dict[str, np.ndarray]:
    """``step``, ``iou``, ``distance`` arrays from a metrics.jsonl (records without the
    disparity keys are skipped)."""
    steps, iou, distance = [], [], []
    for line in Path(metrics).read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if "iou" in record and "distance" in record:
            steps.append(record["step"])
            iou.append(record["iou"])
            distance.append(record["distance"])
    return {"step": np.asarray(steps, float), "iou": np.asarray(iou, float),
            "distance": np.asarray(distance, float)}


def plot_disparity(metrics: str | Path, output: str | Path) -> Path:
    """Write the Figure-5 plot of ``metrics`` to ``output`` (needs matplotlib, the
    ``train`` extra; ImportError with the install command otherwise)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("the disparity plot needs matplotlib: pip install 'vsslzoo[train]' "
                          "(the curves are in metrics.jsonl either way)") from exc
    curves = read_curves(metrics)
    output = Path(output)
    figure, axis = plt.subplots(figsize=(7, 4), dpi=110)
    axis.plot(curves["step"], curves["distance"], "-", label="3D centre Manhattan distance")
    axis.plot(curves["step"], curves["iou"], "--", label="spatio-temporal IoU")
    axis.set_xlabel("step")
    axis.set_title("ParamCrop: disparity between the two views (Fig. 5)")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(output)
    plt.close(figure)
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vsslzoo.training.paramcrop.plot",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run folder holding metrics.jsonl")
    parser.add_argument("-o", "--output", help="PNG to write (default RUN/disparity.png)")
    args = parser.parse_args(argv)
    output = plot_disparity(Path(args.run) / "metrics.jsonl",
                            args.output or Path(args.run) / "disparity.png")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
