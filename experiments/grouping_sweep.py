"""Train several small GLNet set-ups side by side on one make-shapes set and score their grouping.

Each set-up is one ``glmix-viz train`` command (run in parallel subprocesses, e.g. on one GPU); afterwards every run's
final checkpoint is scored on a held-out make-shapes split of another seed: classification mAP and, per GLMix block,
the foreground ARI of its hard slot assignment against the instance masks, beside the untrained and slot-grid
controls (``glmix_viz.heldout.heldout_evaluation``). Writes ``results.json`` and ``results.md`` into ``--out`` and
copies the winner's checkpoint there (best grouping margin among runs with mAP >= 0.90).

    python experiments/grouping_sweep.py --work /tmp/sweep --out results/ --epochs 40 --configs A,B,C
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.make_docs import check_results, command_line, smoke_folder  # noqa: E402

BASE = dict(downsample_strides=[2, 2, 1])
GLMIX_LAST = dict(mixing_modes=["glmix", "glmix", "glmix.mha_nchw", "glmix"])
CONFIGS = {
    # name: (model_args, extra flags)
    "s16": (dict(BASE, num_slots=16), []),
    "s9": (dict(BASE, num_slots=9), []),
    "s4": (dict(BASE, num_slots=4), []),
    "s9_last": (dict(BASE, **GLMIX_LAST, num_slots=9), []),
    "s9_last_mil": (dict(BASE, **GLMIX_LAST, num_slots=9), ["--slot-mil-weight", "0.5"]),
    "s9_mil": (dict(BASE, num_slots=9), ["--slot-mil-weight", "0.5"]),
    "s16_last_mil": (dict(BASE, **GLMIX_LAST, num_slots=16), ["--slot-mil-weight", "0.5"]),
    "s4_last_mil": (dict(BASE, **GLMIX_LAST, num_slots=4), ["--slot-mil-weight", "0.5"]),
    # the published recipe: default temperature C**-0.5, decayed with the other weights, stride-2 last stage
    "recipe_s16": (dict(num_slots=16), ["--wd-recipe", "official"]),
}
DEFAULT_TAU = {"recipe_s16"}  # runs that keep the model's initial slot temperature; the others start at 10


def _make(args: tuple) -> None:
    from glmix_viz.data.shapes import ShapesConfig, make_shapes

    out, num_train, num_val, seed, size = args
    make_shapes(out, ShapesConfig(image_size=size), num_train=num_train, num_val=num_val, seed=seed, overwrite=True,
                progress=False)


class _Finished:
    """A run already finished in this process, waited on like a Popen."""

    def __init__(self, returncode: int) -> None:
        self.returncode = returncode

    def wait(self) -> int:
        return self.returncode


def command(name: str, data: Path, work: Path, epochs: int, batch: int, lr: float, size: int, workers: int = 2
            ) -> list:
    model_args, extra = CONFIGS[name]
    flags = [] if name in DEFAULT_TAU else ["--slot-scale-init", "10"]
    return [sys.executable, "-m", "glmix_viz", "train", "--data", str(data), "--out", str(work / name),
            "--model", "glnet_tiny", "--model-args", json.dumps(model_args), "--epochs", str(epochs),
            "--batch-size", str(batch), "--lr", str(lr), "--input-size", str(size), "--warmup-epochs", "2",
            "--no-progress", "--workers", str(workers), "--no-resume", *flags, *extra]


def table(summary: dict) -> str:
    """One row per set-up: held-out mAP, best block, ARI against the controls (the docs' table)."""
    lines = ["| run | held-out mAP | best block | ARI trained | untrained | grid | margin |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for n, r in summary["results"].items():
        if "error" in r:
            lines.append(f"| {n} | failed | | | | | |")
            continue
        g = r["grouping"]
        lines.append(f"| {n} | {r['heldout_map']:.3f} | {g['best_block']} | {g['best']['trained']:.3f} | "
                     f"{g['best']['untrained']:.3f} | {g['best']['grid']:.3f} | {g['margin']['mean']:+.3f} |")
    return "\n".join(lines)


SMOKE = {"configs": "s4", "num_train": 4, "num_val": 2, "num_eval": 4, "size": 64, "epochs": 1, "batch_size": 2,
         "workers": 0}


def build_parser() -> argparse.ArgumentParser:
    """The sweep's arguments (the docs generator re-parses recorded commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=None, help="data and runs (required; --smoke: a temporary folder)")
    parser.add_argument("--out", default=None, help="results.json / .md and the winner (required; --smoke: "
                        "WORK/out)")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--num-train", type=int, default=6000)
    parser.add_argument("--num-val", type=int, default=500)
    parser.add_argument("--num-eval", type=int, default=400)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--eval-seed", type=int, default=1000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--max-minutes", type=float, default=0.0, help="per-run time limit (0: none)")
    parser.add_argument("--workers", type=int, default=2, help="data-loading processes of every training")
    parser.add_argument("--smoke", action="store_true", help="seconds: one set-up, 4 images of 64 px, one epoch; "
                        "checks OUT/results.json (give --work and --out temporary folders)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
        args.work = args.work or str(smoke_folder(__file__))
        args.out = args.out or str(Path(args.work) / "out")
    if args.work is None or args.out is None:
        build_parser().error("--work and --out are required")
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.configs.split(",") if n]
    data, heldout = work / "shapes", work / "heldout"
    started = time.time()
    if not (data / "shapes_meta.json").is_file():
        jobs = [(str(data), args.num_train, args.num_val, args.data_seed, args.size),
                (str(heldout), 0, args.num_eval, args.eval_seed, args.size)]
        if args.smoke:  # no process start-ups: the same calls in this process
            list(map(_make, jobs))
        else:
            with multiprocessing.Pool(2) as pool:
                pool.map(_make, jobs)
    print(f"data ready in {time.time() - started:.0f} s", flush=True)
    procs = {}
    for name in names:
        cmd = command(name, data, work, args.epochs, args.batch_size, args.lr, args.size, args.workers)
        if args.max_minutes > 0:
            cmd += ["--max-minutes", str(args.max_minutes)]
        log = open(work / f"{name}.log", "w")
        if args.smoke:  # the same command in this process (one torch import)
            import contextlib

            from glmix_viz.cli import main as cli_main

            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                code = cli_main(cmd[3:])
            procs[name] = (_Finished(code), log, cmd)
            continue
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log, cmd)
    for name, (proc, log, cmd) in procs.items():
        proc.wait()
        log.close()
        print(f"{name}: exit {proc.returncode} at {time.time() - started:.0f} s", flush=True)
    train_seconds = time.time() - started

    import torch

    from glmix_viz.heldout import heldout_evaluation, strip_per_image
    from glmix_viz.models.loading import load_model

    results = {}
    for name in names:
        ckpt = work / name / "last.safetensors"
        if not ckpt.is_file():
            results[name] = {"error": (work / f"{name}.log").read_text()[-1500:]}
            continue
        model = load_model(ckpt)
        report = strip_per_image(heldout_evaluation(model, str(heldout), "val", input_size=args.size))
        logs = [json.loads(line) for line in (work / name / "log.jsonl").read_text().splitlines() if line]
        results[name] = dict(heldout_map=report["map"], grouping=report["grouping"],
                             val_map=logs[-1].get("val_map"), epochs=len(logs),
                             train_seconds=sum(e["seconds"] for e in logs), slot_scale=logs[-1]["slot_scale"],
                             command=" ".join(procs[name][2][1:]))
        grouping = report["grouping"]
        print(name, f"mAP {report['map']:.3f}", f"best {grouping['best_block']}",
              f"ARI {grouping['best']['trained']:.3f} untrained {grouping['best']['untrained']:.3f} "
              f"grid {grouping['best']['grid']:.3f} margin {grouping['margin']['mean']:+.3f}", flush=True)
        del model
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    summary = dict(command=command_line(__file__, argv), results=results, args=vars(args), total_seconds=time.time() - started, train_seconds=train_seconds,
                   device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    ok = {n: r for n, r in results.items() if "error" not in r}
    if ok:
        eligible = {n: r for n, r in ok.items() if r["heldout_map"] >= 0.9} or ok
        winner = max(eligible, key=lambda n: eligible[n]["grouping"]["margin"]["mean"])
        for suffix in (".safetensors", ".json"):
            shutil.copy(work / winner / f"last{suffix}", out / f"{winner}{suffix}")
        lines = [table(dict(results=ok))]
        (out / "results.md").write_text("\n".join(lines) + f"\n\nwinner: {winner}\n")
        print("\n".join(lines), f"\nwinner: {winner}", flush=True)
    if args.smoke:
        check_results(__file__, out / "results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
