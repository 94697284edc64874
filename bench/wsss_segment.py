"""The whole weak-supervision path on generated shapes, in one command: pseudo-masks, then a segmenter trained on them.

Run by hand (never in the test suite):

    .venv/bin/python bench/wsss_segment.py                  # the README setting
    .venv/bin/python bench/wsss_segment.py --num-train 60 --num-test 30 --epochs 2 --out /tmp/ws   # a quick look

Every step is the real command line (``python -m glmix_viz ...``), so the numbers are what a user gets:

1. ``make-shapes`` (``--seed``, default 3003: a seed no model or benchmark was trained or tuned on) writes a train
   split (the segmenter's training images) and a held-out test split (the evaluation); both have image-level labels
   (XML) and ground truth.
2. ``pseudo-label`` with the bundled demo model (its defaults: ``slot_vote``, flip, dense CRF) on the train split
   (the segmenter's labels) and on the test split (the pseudo-mask row of the table).
3. ``segment-train`` twice, identical settings, at the same time (two processes; they are independent): on the
   train split's pseudo-masks, and on its ground truth (the fully supervised bound). The encoder is the demo model's
   backbone, frozen (``--backbone-lr-ratio 0``: a small setting for a shared CPU; the decoder learns), UPerNet
   decoder of width 64, 96 px crops at scale 0.6-0.9 of the 128 px images. No validation split: each run keeps its
   last epoch, so nothing is chosen with ground truth.
4. ``segment`` on the test split with each segmenter (scale 0.75, i.e. the training scale; flip; dense CRF, as the
   pseudo-masks have it; ``--no-crf`` to leave it out), and ``evaluate`` of the three folders on the test split
   (mIoU over background + 4 classes; predicted 255 counts as background).

Writes ``OUT/wsss_segment.json`` and ``bench/results/wsss_segment.json`` (unless ``--no-save``) and prints the README
table. Targets: the segmenter on pseudo-masks is not below the pseudo-masks, and reaches 85 % of the bound.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _run(args: List[str], log: Path) -> float:
    """Run ``python -m glmix_viz ARGS`` (this checkout), its output appended to ``log``; the seconds it took."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    with open(log, "a") as handle:
        handle.write(f"\n$ glmix-viz {' '.join(args)}\n")
        handle.flush()
        result = subprocess.run([sys.executable, "-m", "glmix_viz", *args], stdout=handle, stderr=handle, env=env)
    seconds = time.perf_counter() - start
    print(f"{seconds:7.1f} s  glmix-viz {' '.join(args[:1])} ... (exit {result.returncode})", flush=True)
    if result.returncode != 0:
        raise SystemExit(f"glmix-viz {args[0]} failed (exit {result.returncode}); see {log}")
    return seconds


def _run_together(jobs: Dict[str, List[str]], out: Path) -> Dict[str, float]:
    """Run independent ``glmix-viz`` commands at the same time (each logged to ``OUT/log.<name>.txt``); seconds each."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    running = {}
    for name, args in jobs.items():
        handle = open(out / f"log.{name}.txt", "a")
        handle.write(f"\n$ glmix-viz {' '.join(args)}\n")
        handle.flush()
        running[name] = (subprocess.Popen([sys.executable, "-m", "glmix_viz", *args], stdout=handle, stderr=handle,
                                          env=env), handle)
    seconds = {}
    for name, (process, handle) in running.items():
        code = process.wait()
        handle.close()
        seconds[name] = time.perf_counter() - start
        print(f"{seconds[name]:7.1f} s  {name} (exit {code})", flush=True)
        if code != 0:
            raise SystemExit(f"{name} failed (exit {code}); see {out / f'log.{name}.txt'}")
    return seconds


def _miou(folder: Path) -> Dict[str, Any]:
    scores = json.loads((folder / "eval.json").read_text())
    return {"miou": 100 * scores["miou"], "iou": {k: None if v is None else 100 * v for k, v in scores["iou"].items()},
            "images": scores["num_images"]}


def parse_args(argv: List[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/wsss_segment"))
    parser.add_argument("--seed", type=int, default=3003)
    parser.add_argument("--num-train", type=int, default=200)
    parser.add_argument("--num-test", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--input-size", type=int, default=96, help="training crop (the images are 128 px)")
    parser.add_argument("--scale-range", default="0.6,0.9", help="training rescale range")
    parser.add_argument("--test-scales", default="0.75", help="segment --scales (0.75: 96 px, the training scale)")
    parser.add_argument("--no-crf", dest="crf", action="store_false",
                        help="segment without --crf (the pseudo-masks have the CRF, so by default the segmenters too)")
    parser.add_argument("--decoder", default="upernet")
    parser.add_argument("--decoder-channels", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--backbone-lr-ratio", type=float, default=0.0, help="0: the encoder stays frozen")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/wsss_segment.json")
    return parser.parse_args(argv)


def main(argv: List[str] | None = None) -> int:
    from glmix_viz.open import demo_checkpoint

    args = parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    demo = str(demo_checkpoint())
    data = out / "shapes"
    timings: Dict[str, float] = {}
    started = time.perf_counter()
    if not (data / "ImageSets" / "Segmentation" / "test.txt").is_file():
        timings["make_shapes"] = _run(["make-shapes", "--out", str(data), "--num-train", str(args.num_train),
                                       "--num-val", "1", "--num-test", str(args.num_test), "--seed", str(args.seed),
                                       "--overwrite"], log)
    common = ["--voc-root", str(data), "--device", args.device, "--no-progress"]
    for split in ("train", "test"):
        timings[f"pseudo_label_{split}"] = _run(["pseudo-label", *common, "--split", split, "--checkpoint", demo,
                                                 "--out", str(out / f"pseudo_{split}"), "--workers", "0"], log)
    train = ["--split", "train", "--val-split", "none", "--init", demo, "--epochs", str(args.epochs),
             "--batch-size", str(args.batch_size), "--input-size", str(args.input_size), "--decoder", args.decoder,
             "--decoder-channels", str(args.decoder_channels), "--lr", str(args.lr), "--scale-range", args.scale_range,
             "--backbone-lr-ratio", str(args.backbone_lr_ratio), "--workers", "0", "--warmup-steps", "20"]
    labels = {"pseudo": ["--labels", str(out / "pseudo_train")], "gt": []}
    timings.update(_run_together({f"segment_train_{name}": ["segment-train", *common, *train, *extra, "--out",
                                                            str(out / f"run_{name}")]
                                  for name, extra in labels.items()}, out))
    timings.update(_run_together({f"segment_{name}": ["segment", *common, "--split", "test", "--flip", "--scales",
                                                      args.test_scales, *(["--crf"] if args.crf else []),
                                                      "--checkpoint", str(out / f"run_{name}" / "last.safetensors"),
                                                      "--out", str(out / f"pred_{name}")]
                                  for name in labels}, out))
    results = {}
    for name, folder in (("pseudo_masks", "pseudo_test"), ("segmenter_pseudo", "pred_pseudo"),
                         ("segmenter_gt", "pred_gt")):
        _run(["evaluate", "--voc-root", str(data), "--split", "test", "--pred", str(out / folder), "--no-progress"],
             log)
        results[name] = _miou(out / folder)
    report = _report(args, results, timings, time.perf_counter() - started)
    text = json.dumps(report, indent=2) + "\n"
    (out / "wsss_segment.json").write_text(text)
    if not args.no_save:
        (ROOT / "bench" / "results" / "wsss_segment.json").write_text(text)
    print(_table(report))
    return 0


def _report(args: argparse.Namespace, results: Dict[str, Any], timings: Dict[str, float], wall: float) -> Dict:
    pseudo, trained, bound = (results[key]["miou"] for key in ("pseudo_masks", "segmenter_pseudo", "segmenter_gt"))
    return {
        "benchmark": "wsss_segment",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/wsss_segment.py " + " ".join(sys.argv[1:]),
        "settings": vars(args) | {"out": str(args.out)},
        "results": results,
        "targets": {
            "segmenter on pseudo-masks >= pseudo-masks": {"met": trained >= pseudo, "margin": trained - pseudo},
            "segmenter on pseudo-masks >= 85% of the bound": {"met": trained >= 0.85 * bound,
                                                              "fraction": trained / bound if bound else None},
        },
        "timings_s": {key: round(value, 1) for key, value in timings.items()} | {"total": round(wall, 1)},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
    }


def _table(report: Dict[str, Any]) -> str:
    rows = [("pseudo-masks (`pseudo-label`, demo model, slot_vote + CRF)", "pseudo_masks"),
            ("segmenter trained on the pseudo-masks", "segmenter_pseudo"),
            ("segmenter trained on the ground truth (bound)", "segmenter_gt")]
    lines = ["| labels of the held-out split | mIoU |", "| --- | --- |"]
    for label, key in rows:
        lines.append(f"| {label} | {report['results'][key]['miou']:.1f} |")
    for name, target in report["targets"].items():
        lines.append(f"- {name}: {'met' if target['met'] else 'NOT met'} "
                     f"({', '.join(f'{k} {v:.3f}' for k, v in target.items() if k != 'met' and v is not None)})")
    lines.append(f"total {report['timings_s']['total']:.0f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
