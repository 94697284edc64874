"""Write the results section of docs/interventions.md from the results JSON files (never by hand).

    python scripts/interventions_docs.py      # reads bench/results/interventions.json, wsss_shapes_ablate.json

Also computes the paired mIoU difference of slot_ablate against the other methods with a bootstrap interval over
images, when the benchmark's prediction folders are still there (``--work`` of ``bench/wsss_shapes.py``), and writes
it to ``bench/results/wsss_shapes_ablate_paired.json`` (with its ``command``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glmix_viz.errors import GlmixVizError  # noqa: E402
START, END = "<!-- results:start (scripts/interventions_docs.py) -->", "<!-- results:end -->"


def _ci(pair: List[float], scale: float = 1.0, fmt: str = "+.3f") -> str:
    return f"[{format(pair[0] * scale, fmt)}, {format(pair[1] * scale, fmt)}]"


def paired_masks(wsss: Dict[str, Any], reference: str = "slot_ablate") -> Dict[str, Any]:
    """Paired mIoU differences (other - reference) over the evaluation images from the prediction folders."""
    import numpy as np

    from glmix_viz.data.registry import open_split
    from glmix_viz.labels import load_label_png
    from glmix_viz.scoring.segmentation import confusion_matrix
    from glmix_viz.scoring.stats import paired_miou_difference

    first = Path(next(iter(wsss["pseudo_masks"].values()))["predictions"])
    dataset = open_split(first.parents[1] / "eval", "val")  # <work>/predictions/<method> beside <work>/eval
    classes = len(dataset.class_names)
    out: Dict[str, Any] = {}
    for suffix in ("", "_crf"):
        confusions = {}
        for method, entry in wsss["pseudo_masks"].items():
            folder = Path(entry["predictions" + suffix])
            rows = []
            for image_id in dataset.ids:
                rows.append(confusion_matrix(load_label_png(folder / f"{image_id}.png"), dataset.mask(image_id),
                                             classes, background=dataset.background, ignore=dataset.ignore))
            confusions[method] = np.stack(rows)
        for method in confusions:
            if method != reference:
                diff = paired_miou_difference(confusions[method], confusions[reference])
                out[f"{method}{suffix}"] = {k: (v * 100 if k == "mean" else [x * 100 for x in v] if k == "ci95" else v)
                                            for k, v in diff.items()}
    return out


def render(interv: Dict[str, Any], wsss: Dict[str, Any], paired: Dict[str, Any]) -> str:
    sys.path.insert(0, str(ROOT / "bench"))
    from interventions import table

    lines: List[str] = [START, "", f"Generated from `bench/results/interventions.json` (`{interv['command']}`) and "
                        f"`bench/results/wsss_shapes_ablate.json` (`{wsss['command']}`).", "", table(interv)]
    lines += ["", "### slot_ablate as a pseudo-mask method (bench/wsss_shapes.py)", "",
              f"Tuning seed {wsss['data']['tuning']['seed']} ({wsss['data']['tuning']['images']} images), evaluation "
              f"seed {wsss['data']['evaluation']['seed']} ({wsss['data']['evaluation']['images']} images); each method "
              "tuned on the tuning split only.", "",
              "| method | settings | mIoU | mIoU + CRF | slot_ablate - method, no CRF (95 % CI) | with CRF (95 % CI) |",
              "|---|---|---|---|---|---|"]
    for method, entry in wsss["pseudo_masks"].items():
        settings = f"t={entry['threshold']}, {json.dumps(entry.get('options') or {})}"
        plain, crf = paired.get(method), paired.get(f"{method}_crf")
        fmt = lambda p: f"{-p['mean']:+.1f} [{-p['ci95'][1]:+.1f}, {-p['ci95'][0]:+.1f}]" if p else "-"  # noqa: E731
        lines.append(f"| {method} | {settings} | {entry['miou']:.1f} | {entry['miou_crf']:.1f} | {fmt(plain)} | "
                     f"{fmt(crf)} |")
    if "slot_ablate" in wsss["pseudo_masks"] and "slot_pool" in wsss["pseudo_masks"]:
        ablate, pool = wsss["pseudo_masks"]["slot_ablate"], wsss["pseudo_masks"]["slot_pool"]
        above = ablate["miou_crf"] > pool["miou_crf"]
        lines += ["", f"slot_ablate is {'above' if above else 'below'} slot_pool after the CRF "
                      f"(goal: above){'' if above else '; see Findings'}."]
    lines += ["", END]
    return "\n".join(lines)


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interventions", default=str(ROOT / "bench/results/interventions.json"))
    parser.add_argument("--wsss", default=str(ROOT / "bench/results/wsss_shapes_ablate.json"))
    parser.add_argument("--doc", default=str(ROOT / "docs/interventions.md"))
    args = parser.parse_args(argv)
    interv = json.loads(Path(args.interventions).read_text())
    wsss = json.loads(Path(args.wsss).read_text())
    paired_path = ROOT / "docs" / "interventions_paired.json"  # not a bench result: made by this script
    try:
        paired = paired_masks(wsss)
        paired_path.write_text(json.dumps({"command": "python scripts/interventions_docs.py", "note":
                                           "mIoU points, other - slot_ablate, paired bootstrap over images",
                                           "paired": paired}, indent=1) + "\n")
    except (OSError, KeyError, ValueError, GlmixVizError) as error:
        print(f"paired mIoU differences not recomputed ({error}); using {paired_path} if present", file=sys.stderr)
        paired = json.loads(paired_path.read_text())["paired"] if paired_path.is_file() else {}
    doc = Path(args.doc)
    text = doc.read_text()
    section = render(interv, wsss, paired)
    if START in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n## Results\n\n" + section + "\n"
    doc.write_text(text)
    print(f"written {doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
