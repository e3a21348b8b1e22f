"""Collaborative learning through the real system, against its targets and against Flower.

Every kernal figure comes from the harness (:func:`kernal.harness.runner.run_scenario`): a real
hub, ten real trainers over TCP running the ``learning`` engine on non-IID
(``dirichlet:0.5``) shards of scikit-learn's digits, for the scenario's duration (scenario
seconds) played at ``--speed``.
For each seed the bench runs the attack-free ``learning`` scenario and the ``adversarial`` one
(30% poisoners: the last 3 of 10 trainers) for each attack, each with the gate
(``merge="gated"``) and without it (``merge="fedavg"``, the undefended baseline). It then checks:

1. attack-free: mean honest accuracy >= 95% of the centralized baseline, >= 3 points above the
   mean local-only accuracy, and no honest trainer below its own local-only accuracy (ratio and
   gain judged on the mean over seeds; every seed is shown);
2. each attack: mean honest accuracy >= 95% of the attack-free run of the same seed and merge
   mode (mean of the per-seed ratios), with the gate; the no-gate row is shown for contrast;
3. trust: honest-poisoner pairs whose reputation fell below 0.5 within 5 interactions >= 95%
   (pooled over attacks and seeds: ``poisoners_distrusted_within_5`` x
   ``honest_poisoner_pairs_met``), and honest-honest pairs ending below it <= 5% (the mean of
   the reports' ``honest_pairs_below_threshold`` over every gated run, attack-free and
   attacked);
4. Flower's FedAvg (the real ``flwr`` library, ``bench/flower_fedavg.py`` in its own virtualenv
   ``bench/.venv-flower``, created on first use) on the same shards and poisoners: final global
   accuracy and wall time. Rounds = the mean number of partner models an honest trainer
   assessed (merged or refused) in the matching gated kernal run, rounded: one FedAvg round
   gives every client one combined model, one kernal exchange gives it one partner model.

Speed matters: the hub and all ten trainers run in this one Python process, so past some speed
a run is limited by real time rather than scenario time, and the faster the run, the fewer
collaborations each trainer fits into the scenario. The speed check reruns the first seed
attack-free at half, equal (the run-to-run noise) and double speed, and with ``sign_flip`` at
half speed, printing accuracy and the partner models an honest trainer assessed, so the speed
effect can be read against the noise. The machine is shared and small: read ratios, not
absolutes.

    .venv/bin/python bench/learning.py [--seeds 0 1 2] [--speed 50] [--quick] [--out FILE.json]
    .venv/bin/python bench/learning.py --scorecard [--seeds 0 1 2] [--rounds 20]  # see scorecard.py
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kernal.engines.learning import data_seed, dataset_for
from kernal.harness.learning_report import CENTRALIZED_EPOCHS
from kernal.harness.runner import RunOptions, run_scenario
from kernal.harness.scenarios import SCENARIOS, Adversaries
from kernal.learning.data import make_shard
from kernal.learning.model import SoftmaxModel

ROOT = Path(__file__).resolve().parents[1]
FLOWER_VENV = ROOT / "bench" / ".venv-flower"
FLOWER_SCRIPT = ROOT / "bench" / "flower_fedavg.py"
FLOWER_PACKAGES = ("flwr", "numpy", "scikit-learn")

SPLIT = "dirichlet:0.5"
POISONER_FRACTION = 0.3
ATTACKS = ("label_flip", "sign_flip", "noise", "scale")
QUICK_ATTACKS = ("label_flip", "sign_flip")
MERGES = ("gated", "fedavg")
TRUST_THRESHOLD = 0.5
FLOWER_EPOCHS = 5  # the learning engine's epochs_per_tick for softmax (TRAINER_EPOCHS)
DEFAULT_SPEED = 50.0  # see the module docstring: faster runs get fewer collaborations

# The targets.
CENTRAL_RATIO = 0.95
MIN_GAIN = 0.03
ATTACK_RATIO = 0.95
DETECTED_WITHIN_5 = 0.95
HONEST_BELOW_MAX = 0.05

NAN = float("nan")


@dataclass
class KernalRun:
    """What one harness run measured (honest figures only, from its report)."""

    seed: int
    attack: str | None
    merge: str
    speed: float
    wall_time: float
    mean_honest_accuracy: float
    mean_local_only: float
    centralized: float
    honest_below_local_only: list[str]
    honest: list[str]
    poisoners: list[str]
    assessed_per_honest: float  # partner models assessed (kept + refused), mean over honest
    pairs_met: int
    distrusted_within_5: float
    honest_pairs_below: float  # the report's fraction of honest-honest pairs that interacted
    poisoner_reputation: dict[str, float | None]
    failed_trainers: list[str] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)
    local_only: dict[str, float] = field(default_factory=dict)


def _num(value: Any) -> float:
    return NAN if value is None else float(value)


def kernal_run(seed: int, attack: str | None, merge: str, speed: float) -> KernalRun:
    """One harness run: the ``learning`` scenario, or ``adversarial`` with ``attack``."""
    scenario = SCENARIOS["learning" if attack is None else "adversarial"]
    adversaries = Adversaries(attack or "label_flip", POISONER_FRACTION)
    options = RunOptions(
        engine="learning",
        # This bench is learning v1's (its local-only and Flower references are softmax models):
        # it pins the model the engine used before the MLP became the default.
        engine_options={"model": "softmax", "split": SPLIT, "merge": merge},
        adversaries=adversaries,
        trust_threshold=TRUST_THRESHOLD,
    )
    report = asyncio.run(run_scenario(scenario, speed=speed, seed=seed, options=options))
    section: dict[str, Any] = report.get("learning") or {}
    honest: list[str] = list(section.get("honest_trainers", []))
    poisoners: list[str] = list(section.get("poisoners", []))
    trainers: dict[str, Any] = report["trainers"]
    failed = [ai for ai, t in trainers.items() if not t.get("success")]
    assessed: list[float] = []
    final: dict[str, float] = {}
    local: dict[str, float] = {}
    for ai in honest:
        results = trainers[ai]["results"]
        summary = results.get("engine_summary", {})
        assessed.append(summary.get("merges_kept", 0) + summary.get("merges_rejected", 0))
        final[ai] = _num(results.get("final_accuracy"))
        local[ai] = _num(results.get("local_only_accuracy"))
    return KernalRun(
        seed=seed,
        attack=attack,
        merge=merge,
        speed=speed,
        wall_time=float(report["duration"]),
        mean_honest_accuracy=_num(section.get("mean_honest_accuracy")),
        mean_local_only=_num(section.get("mean_honest_local_only_accuracy")),
        centralized=_num(section.get("centralized_baseline")),
        honest_below_local_only=list(section.get("honest_below_local_only", [])),
        honest=honest,
        poisoners=poisoners,
        assessed_per_honest=statistics.fmean(assessed) if assessed else NAN,
        pairs_met=int(section.get("honest_poisoner_pairs_met") or 0),
        distrusted_within_5=_num(section.get("poisoners_distrusted_within_5")),
        honest_pairs_below=_num(section.get("honest_pairs_below_threshold")),
        poisoner_reputation=dict(section.get("poisoner_reputation_seen_by_honest", {})),
        failed_trainers=failed,
        final=final,
        local_only=local,
    )


def local_only_long(seed: int, ai_ids: list[str]) -> dict[str, float]:
    """Each trainer's shard trained alone for CENTRALIZED_EPOCHS epochs (information only: the
    report's local-only figure is the trainer's model after its first, local training)."""
    pool, test = dataset_for(None)
    out: dict[str, float] = {}
    for ai in ai_ids:
        shard = make_shard(pool, SPLIT, data_seed(seed, ai))
        model = SoftmaxModel.zeros(pool.X.shape[1], pool.n_classes)
        model.fit(shard.train.X, shard.train.y, CENTRALIZED_EPOCHS, seed=data_seed(seed, ai) + 1)
        out[ai] = model.accuracy(test.X, test.y)
    return out


def source_hashes() -> dict[str, str]:
    """sha256 of every ``src/kernal`` source file, by path relative to the repository."""
    return {
        str(path.relative_to(ROOT)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((ROOT / "src" / "kernal").rglob("*.py"))
    }


def code_fingerprint(hashes: dict[str, str]) -> dict[str, Any]:
    """What code was measured: the git commit, the files of ``src/`` changed since it, and one
    hash over every ``src/kernal`` source file (the code may change between two runs)."""
    digest = hashlib.sha256()
    for path, file_hash in sorted(hashes.items()):
        digest.update(f"{path}\0{file_hash}\n".encode())

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.rstrip("\n") if done.returncode == 0 else "unknown"

    changed = git("status", "--porcelain", "--", "src")
    return {
        "git_head": git("rev-parse", "--short", "HEAD"),
        "src_changed_since_head": [line[3:] for line in changed.splitlines() if line.strip()]
        if changed != "unknown"
        else "unknown",
        "src_sha256": digest.hexdigest()[:16],
    }


# ---------------------------------------------------------------------- Flower


def flower_python() -> Path:
    """The Flower virtualenv's interpreter, creating or repairing the venv if needed."""
    python = FLOWER_VENV / "bin" / "python"
    probe = [str(python), "-c", "import flwr, kernal.learning.model"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"setting up {FLOWER_VENV.relative_to(ROOT)} (once) ...", file=sys.stderr)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(FLOWER_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *FLOWER_PACKAGES], check=True)
    # kernal.learning needs only numpy and scikit-learn; kernal's own dependencies (typer among
    # them) would clash with flwr's pins, hence --no-deps.
    subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)
    subprocess.run(probe, check=True)
    return python


def flower_jobs(
    seeds: list[int], attacks: list[str | None], rounds: dict[tuple[int, str | None], int]
) -> list[dict[str, Any]]:
    """One FedAvg federation per (seed, attack): the clients of that kernal scenario."""
    jobs: list[dict[str, Any]] = []
    for seed in seeds:
        for attack in attacks:
            scenario = SCENARIOS["learning" if attack is None else "adversarial"]
            specs = scenario.trainers(None, Adversaries(attack or "label_flip", POISONER_FRACTION))
            clients = [
                {
                    "ai_id": spec.ai_id,
                    "data_seed": data_seed(seed, spec.ai_id),
                    "behaviour": spec.behaviour,
                }
                for spec in specs
            ]
            jobs.append(
                {
                    "name": f"{seed}:{attack or 'none'}",
                    "split": SPLIT,
                    "shard_size": None,
                    "rounds": rounds[(seed, attack)],
                    "epochs": FLOWER_EPOCHS,
                    "clients": clients,
                }
            )
    return jobs


def run_flower(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """Run the jobs in the Flower venv; ``{"flwr_version", "results"}``."""
    python = flower_python()
    done = subprocess.run(
        [str(python), str(FLOWER_SCRIPT), json.dumps(jobs)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"flower_fedavg.py failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------- evaluation


def mean(values: list[float]) -> float:
    """Mean ignoring nothing: a NaN (a missing figure) makes the mean NaN, hence a FAIL."""
    return statistics.fmean(values) if values else NAN


def finite(value: Any) -> Any:
    """``value`` with every NaN replaced by None, so the JSON output is standard JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.2f}%"


def acc(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.4f}"


def evaluate(
    runs: dict[tuple[int, str | None, str], KernalRun],
    seeds: list[int],
    attacks: list[str],
    flower: dict[tuple[int, str | None], dict[str, Any]],
    long_local: dict[int, dict[str, float]],
) -> dict[str, Any]:
    """Every target's figures and verdict, plus the rows of the tables."""
    clean = [runs[(s, None, "gated")] for s in seeds]
    ratio_central = [r.mean_honest_accuracy / r.centralized for r in clean]
    gains = [r.mean_honest_accuracy - r.mean_local_only for r in clean]
    below = [f"seed {r.seed}: {ai}" for r in clean for ai in r.honest_below_local_only]
    honest_count = sum(len(r.honest) for r in clean)
    below_long = [
        f"seed {r.seed}: {ai}"
        for r in clean
        for ai in r.honest
        if r.final[ai] < long_local[r.seed][ai]
    ]
    t1 = {
        "ratio_to_centralized": mean(ratio_central),
        "ratio_to_centralized_per_seed": ratio_central,
        "gain_over_local_only": mean(gains),
        "gain_per_seed": gains,
        "honest_below_local_only": below,
        "honest_trainers": honest_count,
        "info_local_only_100_epochs": mean([mean(list(long_local[s].values())) for s in seeds]),
        "info_honest_below_local_only_100_epochs": below_long,
        "pass_ratio": mean(ratio_central) >= CENTRAL_RATIO,
        "pass_gain": mean(gains) >= MIN_GAIN,
        "pass_no_one_below": not below and not any(math.isnan(g) for g in gains),
    }
    t1["pass"] = t1["pass_ratio"] and t1["pass_gain"] and t1["pass_no_one_below"]

    rows: list[dict[str, Any]] = []
    for attack in [None, *attacks]:
        row: dict[str, Any] = {"attack": attack or "none"}
        for merge in MERGES:
            mine = [runs[(s, attack, merge)] for s in seeds]
            ratios = [
                r.mean_honest_accuracy / runs[(r.seed, None, merge)].mean_honest_accuracy
                for r in mine
            ]
            row[merge] = {
                "accuracy": mean([r.mean_honest_accuracy for r in mine]),
                "ratio": mean(ratios),
                "min_ratio": min(ratios),
                "ratio_per_seed": ratios,
                "wall_time": mean([r.wall_time for r in mine]),
            }
        fl = [flower[(s, attack)] for s in seeds]
        fl_ratios = [flower[(s, attack)]["accuracy"] / flower[(s, None)]["accuracy"] for s in seeds]
        row["flower"] = {
            "accuracy": mean([f["accuracy"] for f in fl]),
            "ratio": mean(fl_ratios),
            "ratio_per_seed": fl_ratios,
            "rounds": mean([float(f["rounds"]) for f in fl]),
            "wall_time": mean([f["wall_time"] for f in fl]),
        }
        if attack is not None:
            row["pass"] = row["gated"]["ratio"] >= ATTACK_RATIO
            row["fedavg_would_pass"] = row["fedavg"]["ratio"] >= ATTACK_RATIO
        rows.append(row)
    t2 = {"rows": rows, "pass": all(r["pass"] for r in rows if "pass" in r)}

    attacked = [runs[(s, a, "gated")] for s in seeds for a in attacks]
    met = sum(r.pairs_met for r in attacked)
    detected = sum(round(r.distrusted_within_5 * r.pairs_met) for r in attacked if r.pairs_met)
    # The report gives a fraction, not its denominator (pairs that interacted): every gated
    # run, attack-free and attacked, counts once.
    honest_below = [r.honest_pairs_below for r in clean + attacked]
    trust_rows = []
    for attack in [None, *attacks]:
        mine = [runs[(s, attack, "gated")] for s in seeds]
        m = sum(r.pairs_met for r in mine)
        trust_rows.append(
            {
                "attack": attack or "none",
                "pairs_met": m,
                "detected": sum(
                    round(r.distrusted_within_5 * r.pairs_met) for r in mine if r.pairs_met
                ),
                "honest_below_mean": mean([r.honest_pairs_below for r in mine]),
                "honest_below_max": max(r.honest_pairs_below for r in mine),
            }
        )
    t3: dict[str, Any] = {
        "rows": trust_rows,
        "pairs_met": met,
        "detected_within_5": detected,
        "detected_fraction": detected / met if met else NAN,
        "honest_below_runs": len(honest_below),
        "honest_below_fraction": mean(honest_below),
        "honest_below_max": max(honest_below),
    }
    t3["pass_detection"] = t3["detected_fraction"] >= DETECTED_WITHIN_5
    t3["pass_honest"] = t3["honest_below_fraction"] <= HONEST_BELOW_MAX
    t3["pass"] = t3["pass_detection"] and t3["pass_honest"]
    return {"target1": t1, "target2_4": t2, "target3": t3}


def print_tables(
    results: dict[str, Any],
    runs: dict[tuple[int, str | None, str], KernalRun],
    seeds: list[int],
    long_local: dict[int, dict[str, float]],
    speed_check: list[dict[str, Any]],
    flwr_version: str,
) -> None:
    """The human-readable report."""
    t1, t2, t3 = results["target1"], results["target2_4"], results["target3"]
    print("\n1. Non-IID (dirichlet:0.5), no attackers, gated merge")
    print(
        f"{'seed':<6}{'honest':>8}{'local':>8}{'central':>9}{'/central':>10}{'gain':>8}"
        f"{'below':>7}{'local100':>10}{'no-gate':>9}"
    )
    for s in seeds:
        r, f = runs[(s, None, "gated")], runs[(s, None, "fedavg")]
        print(
            f"{s:<6}{acc(r.mean_honest_accuracy):>8}{acc(r.mean_local_only):>8}"
            f"{acc(r.centralized):>9}{pct(r.mean_honest_accuracy / r.centralized):>10}"
            f"{100 * (r.mean_honest_accuracy - r.mean_local_only):>+8.2f}"
            f"{len(r.honest_below_local_only):>7}"
            f"{acc(mean(list(long_local[s].values()))):>10}{acc(f.mean_honest_accuracy):>9}"
        )
    print(
        f"  honest / centralized >= 95% (mean over seeds): {pct(t1['ratio_to_centralized'])}"
        f" -> {verdict(t1['pass_ratio'])}"
    )
    print(
        f"  gain over local-only >= 3 points (mean over seeds): "
        f"{100 * t1['gain_over_local_only']:+.2f} -> {verdict(t1['pass_gain'])}"
    )
    print(
        f"  no honest trainer below its local-only: {len(t1['honest_below_local_only'])} of "
        f"{t1['honest_trainers']} below -> {verdict(t1['pass_no_one_below'])}"
    )
    print(
        "  (local = the report's local-only accuracy, after the first 30 local epochs; local100 ="
        f" each shard alone for {CENTRALIZED_EPOCHS} epochs, for information: "
        f"{len(t1['info_honest_below_local_only_100_epochs'])} honest trainer(s) end below it;"
        " no-gate = merge=fedavg)"
    )

    attacked_run = next(r for r in runs.values() if r.attack is not None)
    n_bad, n_all = len(attacked_run.poisoners), len(attacked_run.poisoners + attacked_run.honest)
    print(
        f"\n2+4. {POISONER_FRACTION:.0%} poisoners ({n_bad} of {n_all}); ratio = mean honest"
        " accuracy / attack-free run of the same seed and merge, mean over seeds (min over seeds"
        " in brackets)"
    )
    print(
        f"{'attack':<11}{'gated':>8}{'ratio':>18}{'':>6}{'no-gate':>9}{'ratio':>18}"
        f"{'kernal s':>10}{'Flower':>8}{'ratio':>9}{'rounds':>8}{'Flower s':>10}"
    )
    for row in t2["rows"]:
        g, f, fl = row["gated"], row["fedavg"], row["flower"]
        attacked = row["attack"] != "none"

        def ratio(x: dict[str, Any], on: bool = attacked) -> str:
            return f"{pct(x['ratio'])} ({pct(x['min_ratio'])})" if on else "-"

        print(
            f"{row['attack']:<11}{acc(g['accuracy']):>8}{ratio(g):>18}"
            f"{verdict(row['pass']) if attacked else '':>6}{acc(f['accuracy']):>9}"
            f"{ratio(f):>18}{g['wall_time']:>10.1f}{acc(fl['accuracy']):>8}"
            f"{pct(fl['ratio']) if attacked else '-':>9}{fl['rounds']:>8.1f}"
            f"{fl['wall_time']:>10.2f}"
        )
    print(
        f"  target: gated ratio >= 95% for every attack -> {verdict(t2['pass'])}. No-gate (fedavg"
        " merge, same system) and Flower are shown, not judged."
    )
    print(
        f"  Flower: flwr {flwr_version} FedAvg, same shards and poisoners, {FLOWER_EPOCHS} local"
        " epochs per round; rounds = mean partner models an honest kernal trainer assessed"
        " (kept + refused) in the matching gated run, rounded; accuracy = final global model."
        " kernal s = wall time of a whole run (scenario duration / speed, plus start-up);"
        " Flower s = the FedAvg rounds only."
    )

    print("\n3. Trust (gated runs): honest-poisoner pairs distrusted (< 0.5) within 5 interactions")
    print(
        f"{'attack':<11}{'pairs met':>10}{'within 5':>10}"
        f"{'honest-honest below: mean':>28}{'max':>8}"
    )
    for row in t3["rows"]:
        print(
            f"{row['attack']:<11}{row['pairs_met']:>10}{row['detected']:>10}"
            f"{pct(row['honest_below_mean']):>28}{pct(row['honest_below_max']):>8}"
        )
    print(
        f"  distrusted within 5: {t3['detected_within_5']}/{t3['pairs_met']} ="
        f" {pct(t3['detected_fraction'])} (>= 95%) -> {verdict(t3['pass_detection'])}"
    )
    print(
        f"  honest-honest pairs ending below (mean of {t3['honest_below_runs']} gated runs' report"
        f" fractions): {pct(t3['honest_below_fraction'])} (<= 5%) -> {verdict(t3['pass_honest'])}"
    )
    print(
        "  (pairs met = the report's honest_poisoner_pairs_met; honest-honest fraction = the"
        " report's honest_pairs_below_threshold, over the honest pairs that interacted)"
    )

    if speed_check:
        print(f"\nSpeed check (seed {seeds[0]}, gated): the same run at other speeds")
        for check in speed_check:
            print(
                f"  {check['attack']:<11} speed {check['speed']:<5g} honest"
                f" {acc(check['accuracy'])}, partner models assessed per honest trainer"
                f" {check['assessed']:.1f}"
                f" ({check['note']})"
            )


def main(argv: list[str] | None = None) -> None:
    """Parse the flags, run everything, print the tables and one JSON line. ``--scorecard``
    hands the rest of the command line to ``bench/scorecard.py`` (every attack x every
    defence, both datasets, in the offline simulator)."""
    args_in = sys.argv[1:] if argv is None else argv
    if "--scorecard" in args_in:
        sys.path.insert(0, str(ROOT))
        from bench import scorecard

        scorecard.main([a for a in args_in if a != "--scorecard"])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--speed", type=float, default=DEFAULT_SPEED)
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 attacks: a smoke run")
    parser.add_argument("--no-speed-check", action="store_true")
    parser.add_argument("--out", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args(argv)
    logging.getLogger("kernal").setLevel(logging.ERROR)  # the hub's per-share INFO/WARNING lines
    started = time.perf_counter()
    hashes = source_hashes()
    fingerprint = code_fingerprint(hashes)
    seeds: list[int] = args.seeds[:1] if args.quick else list(args.seeds)
    attacks = list(QUICK_ATTACKS if args.quick else ATTACKS)
    plan = [(s, a, m) for s in seeds for a in [None, *attacks] for m in MERGES]
    runs: dict[tuple[int, str | None, str], KernalRun] = {}
    for n, (seed, attack, merge) in enumerate(plan, start=1):
        run = kernal_run(seed, attack, merge, args.speed)
        runs[(seed, attack, merge)] = run
        print(
            f"[{n}/{len(plan)}] seed {seed} {attack or 'no attack'} {merge}: honest"
            f" {acc(run.mean_honest_accuracy)} in {run.wall_time:.1f} s"
            + (f" (failed trainers: {run.failed_trainers})" if run.failed_trainers else ""),
            file=sys.stderr,
        )

    speed_check: list[dict[str, Any]] = []
    if not args.no_speed_check:
        s0 = seeds[0]
        checks: list[tuple[str | None, float, str]] = [
            (None, args.speed / 2, "half speed"),
            (None, args.speed, "same speed, repeated: run-to-run noise"),
            (None, args.speed * 2, "double speed"),
            (attacks[1], args.speed / 2, "half speed"),
        ]
        for attack in (None, attacks[1]):
            speed_check.append(
                {
                    "attack": attack or "none",
                    "speed": args.speed,
                    "accuracy": runs[(s0, attack, "gated")].mean_honest_accuracy,
                    "assessed": runs[(s0, attack, "gated")].assessed_per_honest,
                    "note": "the main run",
                }
            )
        for attack, speed, note in checks:
            run = kernal_run(s0, attack, "gated", speed)
            print(
                f"[speed check] seed {s0} {attack or 'no attack'} gated at speed {speed:g}:"
                f" honest {acc(run.mean_honest_accuracy)} in {run.wall_time:.1f} s",
                file=sys.stderr,
            )
            speed_check.append(
                {
                    "attack": attack or "none",
                    "speed": speed,
                    "accuracy": run.mean_honest_accuracy,
                    "assessed": run.assessed_per_honest,
                    "wall_time": run.wall_time,
                    "note": note,
                }
            )
        speed_check.sort(key=lambda c: (c["attack"] != "none", c["attack"], -c["speed"]))

    long_local = {s: local_only_long(s, runs[(s, None, "gated")].honest) for s in seeds}
    rounds = {
        (s, a): max(1, round(runs[(s, a, "gated")].assessed_per_honest))
        for s in seeds
        for a in [None, *attacks]
    }
    print("[flower] FedAvg on the same shards ...", file=sys.stderr)
    flower_out = run_flower(flower_jobs(seeds, [None, *attacks], rounds))
    by_name = {r["name"]: r for r in flower_out["results"]}
    flower = {(s, a): by_name[f"{s}:{a or 'none'}"] for s in seeds for a in [None, *attacks]}

    results = evaluate(runs, seeds, attacks, flower, long_local)
    now = source_hashes()
    code_changed = sorted(f for f in hashes.keys() | now.keys() if hashes.get(f) != now.get(f))
    if code_changed:
        print(
            f"NOTE: changed on disk while the bench ran: {', '.join(code_changed)}. The kernal"
            " runs used the modules imported at the start; the Flower subprocess imported"
            " kernal.learning at the end."
        )
    wall = time.perf_counter() - started
    scenario = SCENARIOS["adversarial"]
    count = scenario.default_trainers
    print(
        f"kernal learning bench: seeds {' '.join(map(str, seeds))}, speed {args.speed:g}, "
        f"{count} trainers, split {SPLIT}, {scenario.duration(count):g} scenario s per run,"
        f" {len(plan)} runs"
        f"{' (quick)' if args.quick else ''}; bench wall time {wall:.0f} s"
    )
    changed = fingerprint["src_changed_since_head"]
    print(
        f"code: git {fingerprint['git_head']}"
        + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")
        + f" (src sha256 {fingerprint['src_sha256']})"
    )
    print_tables(results, runs, seeds, long_local, speed_check, flower_out["flwr_version"])
    summary = {
        "bench": "learning",
        "seeds": seeds,
        "speed": args.speed,
        "quick": args.quick,
        "attacks": attacks,
        "wall_time": round(wall, 1),
        "flwr_version": flower_out["flwr_version"],
        "flower_rounds": "mean partner models assessed by an honest trainer, gated run",
        "code": fingerprint,
        "code_changed_during_run": code_changed,
        "pass": {
            "1_vs_centralized": results["target1"]["pass_ratio"],
            "1_gain_over_local": results["target1"]["pass_gain"],
            "1_no_honest_below_local": results["target1"]["pass_no_one_below"],
            "2_attacks_gated": results["target2_4"]["pass"],
            "3_detected_within_5": results["target3"]["pass_detection"],
            "3_honest_pairs_below": results["target3"]["pass_honest"],
        },
        "ratio_to_centralized": results["target1"]["ratio_to_centralized"],
        "gain_over_local_only": results["target1"]["gain_over_local_only"],
        "attack_ratio_gated": {
            r["attack"]: r["gated"]["ratio"] for r in results["target2_4"]["rows"][1:]
        },
        "attack_ratio_no_gate": {
            r["attack"]: r["fedavg"]["ratio"] for r in results["target2_4"]["rows"][1:]
        },
        "flower_accuracy": {
            r["attack"]: r["flower"]["accuracy"] for r in results["target2_4"]["rows"]
        },
        "detected_within_5": results["target3"]["detected_fraction"],
        "honest_pairs_below": results["target3"]["honest_below_fraction"],
    }
    print(json.dumps(finite(summary)))
    if args.out is not None:
        full = {
            "summary": summary,
            "targets": results,
            "speed_check": speed_check,
            "runs": [asdict(r) for r in runs.values()],
            "local_only_100_epochs": {str(s): v for s, v in long_local.items()},
            "flower": flower_out,
        }
        args.out.write_text(json.dumps(finite(full), indent=1, default=str))


if __name__ == "__main__":
    main()
