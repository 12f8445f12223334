"""What a fit writes and says: metrics.json, the run configuration, search.csv,
history.csv, learning_curve.png, and the summary lines crbm-fit logs."""
from __future__ import annotations

import os
import sys
import time
from typing import Callable

import numpy as np

from crbm_jax.data.tagtable import table_bytes

METRICS_FILE = "metrics.json"
SEARCH_COLUMNS = ("conditioned", "num_hidden", "learning_rate", "l1_aux", "aux_lr_scale",
                  "weight_decay", "batch_size", "momentum", "best_val_pl", "best_epoch",
                  "epochs", "stopped")
STOP_REASONS = {
    "converged": "validation PL stopped improving (patience exhausted)",
    "max_epochs": ("it reached --num_epochs (raise --num_epochs: it may not have "
                   "converged)"),
    "halved": "successive halving stopped it", "budget": "the time budget ran out",
    "diverged": "it diverged (kept the best epoch before; --allow_divergence)"}


def cell(value) -> str:
  """A table cell: '' for None / non-finite numbers, 6 significant digits for floats."""
  if value is None or (isinstance(value, float) and not np.isfinite(value)):
    return ""
  if isinstance(value, (bool, np.bool_)):
    return "1" if value else "0"
  if isinstance(value, (float, np.floating)):
    return f"{value:.6g}"
  return str(value)


def throttled(prog: str, every: float = 5.0) -> Callable[[str], None]:
  """A progress callback printing at most one line per ``every`` seconds to stderr."""
  last = [0.0]

  def report(message: str) -> None:
    now = time.time()
    if now - last[0] >= every:
      last[0] = now
      print(f"{prog}: {message}", file=sys.stderr, flush=True)
  return report


def fit_metrics(comparison, data, *, search: bool, space, search_fields, train_pl: float,
                zero_fraction: float, seconds: float) -> dict:
  """The metrics dict of a fit (metrics.json): the comparison on validation and test, the
  selected and best unconditional configurations, the learning curve, the data's sizes."""
  obs, split, groups = data
  chosen = comparison.selected.config
  curve, uncond = comparison.curve, comparison.unconditional
  return {
      "test_balanced_pl": comparison.test["crbm"],
      "baseline_test_balanced_pl": comparison.test["baseline"],
      "unconditional_test_balanced_pl": comparison.test.get("unconditional"),
      "val_balanced_pl": comparison.val["crbm"],
      "baseline_val_balanced_pl": comparison.val["baseline"],
      "unconditional_val_balanced_pl": comparison.val.get("unconditional"),
      "train_balanced_pl": train_pl,
      "test_differences": comparison.differences,
      "selected": {k: (bool(v) if k == "conditioned" else v) for k, v in chosen.items()},
      "unconditional": None if uncond is None else {
          k: uncond[k] for k in search_fields if k != "conditioned"},
      "search": bool(search), "configurations_tried": len(comparison.table),
      "search_space": space,
      "search_seconds": round(comparison.selected.seconds, 2),
      "best_epoch": curve["best_epoch"], "epochs_trained": curve["epochs"],
      "stopped": curve["stopped"],
      "val_pl_by_evaluation": curve["val_pl"], "evaluation_epochs": curve["eval_epoch"],
      "recon_error_by_epoch": curve["recon_error"],
      "w_aux_zero_fraction": zero_fraction,
      "num_train": len(split.train), "num_val": len(split.val), "num_test": len(split.test),
      "num_observations": obs.num_observations, "num_dropped": obs.num_dropped,
      "num_visible": obs.num_visible, "num_hidden": int(chosen["num_hidden"]),
      "num_aux": obs.num_aux, "aux_groups": list(groups),
      "entities_per_group": {g: len(e) for g, e in zip(obs.groups, obs.entity_names)},
      "seconds": round(seconds, 2),
  }


def learning_curve_png(curve: dict, baseline_val_pl: float, title: str) -> bytes:
  """A two-panel PNG: reconstruction error per epoch; validation PL per evaluation with
  the factored baseline's level and the best epoch marked."""
  import io  # pylint: disable=import-outside-toplevel
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
  recon = curve["recon_error"]
  ax1.plot(np.arange(1, len(recon) + 1), recon, color="C0")
  ax1.set_xlabel("epoch")
  ax1.set_ylabel("reconstruction error (per bit)")
  ax1.set_title("training")
  ax2.plot(np.asarray(curve["eval_epoch"]) + 1, curve["val_pl"], "o-", ms=3, color="C1",
           label="CRBM")
  ax2.axhline(baseline_val_pl, color="0.4", ls="--", label="factored baseline")
  if curve["best_epoch"] >= 0:
    ax2.axvline(curve["best_epoch"] + 1, color="C2", ls=":",
                label=f"best epoch {curve['best_epoch'] + 1}")
  ax2.set_xlabel("epoch")
  ax2.set_ylabel("balanced log pseudo-likelihood")
  ax2.set_title(f"validation (stopped: {curve['stopped']})")
  ax2.legend(fontsize=8, loc="lower right")
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
  plt.close(fig)
  return buf.getvalue()


def run_files(comparison, tags: str) -> dict:
  """{name: bytes} of the run folder's extra files: search.csv (every configuration
  tried), history.csv (the chosen model's curve), learning_curve.png."""
  chosen, curve = comparison.selected.config, comparison.curve
  val_by_epoch = dict(zip(curve["eval_epoch"], curve["val_pl"]))
  return {
      "search.csv": table_bytes(SEARCH_COLUMNS, [[cell(r[c]) for c in SEARCH_COLUMNS]
                                                 for r in comparison.table], "search.csv"),
      "history.csv": table_bytes(
          ["epoch", "recon_error", "val_pl"],
          [[e + 1, f"{r:.6g}", cell(val_by_epoch.get(e))]
           for e, r in enumerate(curve["recon_error"])], "history.csv"),
      "learning_curve.png": learning_curve_png(
          curve, comparison.val["baseline"],
          f"crbm-fit on {os.path.basename(tags)}: H={chosen['num_hidden']}, "
          f"lr={chosen['learning_rate']:g}, L1={chosen['l1_aux']:g}, "
          f"aux_lr_scale={chosen['aux_lr_scale']:g}, wd={chosen['weight_decay']:g}"),
  }


def fit_summary(metrics: dict, comparison) -> list:
  """The lines crbm-fit logs: what was chosen, why it stopped, the honest comparison."""
  chosen = metrics["selected"]
  lines = []
  if metrics["search"]:
    lines.append(f"searched {metrics['configurations_tried']} configurations in "
                 f"{metrics['search_seconds']:.1f} s; selected on validation: hidden "
                 f"{chosen['num_hidden']}, learning rate {chosen['learning_rate']:g}, L1 "
                 f"{chosen['l1_aux']:g}, aux_lr_scale {chosen['aux_lr_scale']:g}, weight "
                 f"decay {chosen['weight_decay']:g}")
  space = metrics.get("search_space") or {}
  for name, values in space.items():
    value = chosen.get(name)
    if len(values) > 1 and value in (min(values), max(values)) and value != 0:
      side = "largest" if value == max(values) else "smallest"
      flag = f"--search_{name}"
      lines.append(f"the chosen {name} {value:g} is the {side} value searched; the best may "
                   f"lie beyond it: add {'larger' if side == 'largest' else 'smaller'} values "
                   f"to {flag}")
  lines.append(f"training stopped after {metrics['epochs_trained']} epochs because "
               f"{STOP_REASONS.get(metrics['stopped'], metrics['stopped'])}; best epoch "
               f"{metrics['best_epoch'] + 1}")
  test = comparison.test
  lines.append(f"test balanced log pseudo-likelihood: CRBM {test['crbm']:.4f}"
               + (f", unconditional RBM {test['unconditional']:.4f}"
                  if "unconditional" in test else "")
               + f", factored baseline {test['baseline']:.4f}")
  for name, d in comparison.differences.items():
    a, b = name.split("_minus_")
    z = d["difference"] / d["stderr"] if d["stderr"] and np.isfinite(d["stderr"]) else 0.0
    verdict = ("better" if z > 2 else "worse" if z < -2 else "not distinguishable (|z| < 2)")
    lines.append(f"  {a} - {b}: {d['difference']:+.4f} +/- {d['stderr']:.4f} (paired s.e. "
                 f"over test observations): {a} is {verdict}")
  return lines
