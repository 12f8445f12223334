"""The main job: reproduce the paper on the embedded default data and write a report.

``crbm-reproduce --workdir DIR [--config smoke|default|full]`` runs Table 1 / Figure 1,
Table 2 (with the Last.fm W_aux report), Table 3 / Figure 2 (with the simulated study's
recovery of hidden true tags) and the beyond-the-paper section, each in its own
subdirectory of DIR, then writes DIR/REPORT.md and the self-contained DIR/REPORT.html.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

from crbm_jax.paper import report as report_lib
from crbm_jax.util import compile_cache
from crbm_jax.util.atomic import write_json_atomic, write_text_atomic
from crbm_jax.util import threads as threads_lib
from crbm_jax.util.pool import spawn_pool


def _log(message: str) -> None:
  print(f"[crbm-reproduce {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _read(path: str) -> str:
  with open(path, encoding="utf-8") as f:
    return f.read()


def _demote_headings(markdown: str, levels: int = 2) -> str:
  """Push a stage's own headings below the report's section headings."""
  return re.sub(r"^(#+)", lambda m: "#" * min(6, len(m.group(1)) + levels), markdown,
                flags=re.M)


def _relink(markdown: str, stage_dir: str, workdir: str) -> str:
  """Rewrite relative image/link targets of a stage file to be relative to the report."""
  rel = os.path.relpath(stage_dir, workdir)

  def fix(m):
    target = m.group(2)
    if re.match(r"^[a-z]+:", target) or target.startswith(("/", "#")):
      return m.group(0)
    return f"{m.group(1)}({os.path.normpath(os.path.join(rel, target))})"

  return re.sub(r"(!?\[[^\]]*\])\(([^)]+)\)", fix, markdown)


def _include(path: str, workdir: str, levels: int = 2) -> str:
  return _relink(_demote_headings(_read(path), levels), os.path.dirname(path), workdir)


# --------------------------------------------------------------------------- stages


def stage_table1(config, workdir: str) -> Dict:
  from crbm_jax.data import datasets, synthetic
  from crbm_jax.paper import table1
  out_dir = os.path.join(workdir, "table1")
  parts, data = [], {}
  for name in config.datasets:
    if name == "synthetic":
      table = synthetic.synthetic_tag_table(**config.synthetic.to_dict())
    else:
      table = datasets.load_dataset(name).table
    paths = table1.run_table1(table, os.path.join(out_dir, name), name,
                                    paper=config.paper, num_bins=config.num_bins,
                                    variants=tuple(map(tuple, config.variants)))
    data[name] = paths
    md = _include(paths["table1_md"], workdir, levels=2)
    fig = os.path.relpath(paths["figure1_png"], workdir)
    parts.append(f"### Data set: {name}\n\n{md}\n\n![Figure 1 ({name})]({fig})\n")
  return {"markdown": "\n".join(parts), "data": data}


def _stage_with_markdown(run_fn, config, workdir: str, name: str) -> Dict:
  """A stage that writes <workdir>/<name>/<name>.md: its result and that Markdown."""
  out_dir = os.path.join(workdir, name)
  result = run_fn(config, out_dir)
  md = _include(os.path.join(out_dir, f"{name}.md"), workdir, levels=2)
  return {"markdown": md, "data": result}


def stage_table2(config, workdir: str) -> Dict:
  from crbm_jax.paper import table2
  return _stage_with_markdown(table2.run_table2, config, workdir, "table2")


def stage_table3(config, workdir: str) -> Dict:
  from crbm_jax.paper import table3
  out_dir = os.path.join(workdir, "table3")
  result = table3.run_autotagging(config, out_dir)
  parts = []
  for name, summary in result["datasets"].items():
    paths = summary["paths"]
    parts.append(f"### Data set: {name}\n")
    parts.append(_include(paths["table3_markdown"], workdir, levels=2))
    fig = os.path.relpath(paths["figure2_png"], workdir)
    parts.append(f"![Figure 2 ({name}): per-tag accuracy on raw test tags]({fig})\n")
    if "recovery_markdown" in paths:
      parts.append(_include(paths["recovery_markdown"], workdir, levels=2))
    if "smoothers_md" in paths:  # the baseline smoothers beside the CRBM (issue 23)
      parts.append(_include(paths["smoothers_md"], workdir, levels=2))
  sp = result.get("sparsity")
  if sp:
    parts.append(_include(sp["paths"]["markdown"], workdir, levels=2))
  demo = result.get("demo_audio")
  if demo:
    skipped = "; ".join(f"{os.path.basename(p)} ({why})" for p, why in demo["skipped"])
    parts.append(
        "### Demo audio: the audio path on real recordings\n\n"
        f"{demo['num_files']} committed excerpts (public domain / CC-BY) decoded, cut into "
        f"10-second clips and turned into timbral + rhythmic features of shape "
        f"{tuple(demo['features_shape'])} (all finite: {demo['finite']}) in "
        f"{demo['seconds']:.1f} s. Skipped: {skipped or 'none'}. No tags exist for them; "
        "they show that users' own audio goes through the same path.\n")
  return {"markdown": "\n\n".join(parts), "data": result}


def stage_beyond(config, workdir: str) -> Dict:
  from crbm_jax.paper import beyond
  return _stage_with_markdown(beyond.run_beyond, config, workdir, "beyond")


def stage_audio_tags(config, workdir: str) -> Dict:
  from crbm_jax.paper import audio_tags
  return audio_tags.stage(config, workdir)


def _extra_claims(results: Dict) -> List[dict]:
  """Scorecard rows that stages beyond the paper report themselves (audio_tags: A1), in
  the scorecard's row form."""
  rows = []
  row = (results.get("audio_tags") or {}).get("scorecard")
  if row:
    head, _, text = row["claim"].partition(": ")  # 'A1 (2011 follow-up)', the claim
    claim = head.split()[0]
    text = f"{text} {head[len(claim):].strip()}".strip()
    rows.append({"claim": claim, "text": text, "cells": [
        {k: row[k] for k in ("dataset", "paper", "ours", "verdict", "reason")}]})
  return rows


STAGES: Dict[str, tuple] = {
    "table1": ("Table 1 and Figure 1: tag agreement between tagging tasks", stage_table1),
    "table2": ("Table 2: pseudo-likelihood of conditional RBMs", stage_table2),
    "table3": ("Table 3 and Figure 2: autotaggers trained on raw and smoothed tags",
               stage_table3),
    "beyond": ("Beyond the paper: AIS log-likelihood, PCD / tempering, distance-aware clips",
               stage_beyond),
    "audio_tags": ("Beyond the paper: tags from audio and context", stage_audio_tags),
}


# --------------------------------------------------------------------------- report


def _compile_line(compile_split: Dict[str, dict]) -> str:
  """'- Compilation: ...' from the stages' CompileClock splits ('' when none were kept)."""
  if not compile_split:
    return ""
  parts = [f"{k} {v['compile_seconds']:.1f} s compile + {v['compute_seconds']:.1f} s compute "
           f"({v['cache_hits']}/{v['compiles']} programs from the cache)"
           + (f", and {v['worker_compile_seconds']:.1f} s compiled by its worker processes "
              f"at the same time ({v['worker_cache_hits']}/{v['worker_compiles']} from the "
              "cache)" if v.get("worker_compiles") else "")
           for k, v in compile_split.items()]
  compile_s = sum(v["compile_seconds"] + v.get("worker_compile_seconds", 0.0)
                  for v in compile_split.values())
  hits = sum(v["cache_hits"] + v.get("worker_cache_hits", 0) for v in compile_split.values())
  programs = sum(v["compiles"] + v.get("worker_compiles", 0) for v in compile_split.values())
  folder = compile_cache.active_dir()
  where = (f"JAX's persistent compilation cache in `{folder}`" if folder else
           "no persistent compilation cache (disabled)")
  return ("- Compile vs compute: " + "; ".join(parts) + f". In all {compile_s:.0f} s of "
          f"compilation; {hits} of {programs} programs were loaded from {where}. A second "
          "run with a warm cache skips the compiling that the cache holds "
          "(docs/benchmarks.md gives cold and warm runs measured side by side).")


def _previous_line(previous: Optional[dict], compile_split: Dict[str, dict],
                   wall: Optional[float] = None) -> str:
  """'- Against the previous run in this workdir: ...' (the same stages), or ''."""
  if not previous or not compile_split or set(previous.get("stages", {})) != set(
      compile_split):
    return ""
  prev = previous["stages"]
  before = sum(v["seconds"] for v in prev.values())
  now = sum(v["seconds"] for v in compile_split.values())
  c_before = sum(v["compile_seconds"] for v in prev.values())
  c_now = sum(v["compile_seconds"] for v in compile_split.values())
  per = ", ".join(f"{k} {prev[k]['seconds']:.0f} → {v['seconds']:.0f} s"
                  for k, v in compile_split.items())
  walls = (f"wall {previous['wall']:.0f} s → {wall:.0f} s, " if wall is not None
           and previous.get("wall") is not None else "")
  return (f"- Against the previous run in this workdir ({previous.get('started', '?')}): "
          f"{walls}{before:.0f} s → {now:.0f} s of stage time "
          f"({before / max(now, 1e-9):.1f}x), "
          f"compilation {c_before:.0f} s → {c_now:.0f} s; {per}. A rerun also reuses the "
          "Table 2 fits stored under `results/`, so this is not the compilation cache's "
          "effect alone.")


def _header(config, env: Dict, timings: Dict[str, float], started: str,
            compile_split: Optional[Dict[str, dict]] = None,
            previous: Optional[dict] = None, wall: Optional[float] = None,
            processes: int = 1) -> str:
  total = sum(timings.values()) if wall is None else wall
  at_once = (f" ({sum(timings.values()):.0f} s of stage time in {processes} processes at "
             "once)" if processes > 1 else "")
  against = _previous_line(previous, compile_split, wall)
  lines = [
      "# Learning tags that vary within a song — reproduction report", "",
      "Mandel, Eck & Bengio (ISMIR 2010), reproduced by crbm_jax on the embedded default "
      "data: a simulated Mechanical Turk study with known ground truth (the paper's own "
      "data is not public), MajorMiner clip tags with Essentia features, HetRec 2011 "
      "Last.fm tags and demo audio. Each table shows the paper's numbers beside ours.", "",
      f"- Configuration: `{config.variant}` (seed {config.seed}); started {started}; "
      f"total {total:.0f} s{at_once}.",
      "- Stage timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()) + ".",
      *([_compile_line(compile_split)] if compile_split else []),
      *([against] if against else []),
      f"- Python {env['python']} on {env['platform']}, {env['cpu_count']} CPUs, JAX devices "
      f"{', '.join(env['jax_devices'])}.",
      "- Packages: " + ", ".join(f"{k} {v}" for k, v in env["packages"].items()) + ".", ""]
  return "\n".join(lines)


def write_report(workdir: str, config, sections: List[tuple], timings: Dict[str, float],
                 reading: List[str], started: str,
                 scorecard_md: str = "",
                 compile_split: Optional[Dict[str, dict]] = None,
                 previous: Optional[dict] = None, wall: Optional[float] = None,
                 processes: int = 1) -> Dict[str, str]:
  env = report_lib.environment_info()
  parts = [_header(config, env, timings, started, compile_split, previous, wall,
                   processes)]
  if scorecard_md:
    parts.append(scorecard_md)
  if reading:
    parts.append("## Reading: where we agree with the paper and where we differ\n")
    parts.append("\n".join(f"- {r}" for r in reading) + "\n")
  for title, markdown in sections:
    parts.append(f"## {title}\n\n{markdown}\n")
  parts.append("## Run configuration\n\nStages run: " + ", ".join(timings) + ".\n\n```json\n"
               + json.dumps(config.to_dict(), indent=1, default=str) + "\n```\n")
  text = "\n".join(parts)
  md_path = os.path.join(workdir, "REPORT.md")
  html_path = os.path.join(workdir, "REPORT.html")
  write_text_atomic(md_path, text)
  write_text_atomic(
      html_path, report_lib.markdown_to_html(text, workdir, "crbm_jax reproduction report"))
  return {"markdown": md_path, "html": html_path}


def _read_timings(path: str, variant: str) -> Optional[dict]:
  """The previous run's timings.json in this workdir when it ran the same variant (an
  older or unreadable file is ignored: it only feeds the report's comparison line)."""
  try:
    with open(path) as f:
      prev = json.load(f)
  except (OSError, ValueError):
    return None
  if not isinstance(prev, dict) or prev.get("variant") != variant or not isinstance(
      prev.get("stages"), dict):
    return None
  return prev


# Stages longest first (measured: Table 3, then Table 2, ...), so that with two processes
# the longest stage starts at once and the others share the second process.
LONGEST_FIRST = ("table3", "table2", "beyond", "audio_tags", "table1")


def _run_stage(stage: str, stage_config, workdir: str) -> tuple:
  """One stage and its compile/compute split: (stage output, CompileClock.split())."""
  clock = compile_cache.CompileClock()
  out = STAGES[stage][1](stage_config, workdir)
  return out, clock.split()


def _stages_in_processes(config, workdir: str, stages: Sequence[str], processes: int,
                         done: Callable[[str, tuple], None]) -> None:
  """Runs ``stages`` in ``processes`` spawned worker processes, longest first; calls
  ``done(stage, (output, split))`` as each finishes. The stages share nothing but the
  workdir's separate subfolders and the compilation cache (safe to share), and each is
  seeded by its own config, so their numbers equal those of a run in one process."""
  import concurrent.futures  # pylint: disable=import-outside-toplevel
  order = sorted(stages, key=lambda s: LONGEST_FIRST.index(s) if s in LONGEST_FIRST
                 else -1)
  pool = spawn_pool(processes, compile_cache.enable,  # workers use the parent's cache
                    (compile_cache.active_dir() or "off",))
  try:
    futures = {}
    for stage in order:
      _log(f"stage {stages.index(stage) + 1}/{len(stages)} queued: {STAGES[stage][0]}")
      futures[pool.submit(_run_stage, stage, config[stage], workdir)] = stage
    for future in concurrent.futures.as_completed(futures):
      done(futures[future], future.result())
  finally:
    pool.shutdown(wait=True, cancel_futures=True)


def run_reproduction(config, workdir: str, stages: Optional[Sequence[str]] = None,
                     reading_fn: Callable[[Dict], List[str]] = None,
                     processes: Optional[int] = None) -> Dict:
  """Runs ``stages`` (default ``config.stages``) under ``workdir`` and writes REPORT.md /
  REPORT.html.

  ``processes`` (default ``config.processes``, else 1): with more than one, the stages run
  at the same time in that many spawned worker processes, longest first; the report is
  the same, in the same order (each stage is seeded by its own config)."""
  from crbm_jax.paper import reading as reading_lib
  from crbm_jax.paper import scorecard as scorecard_lib
  os.makedirs(workdir, exist_ok=True)
  started = datetime.datetime.now().isoformat(timespec="seconds")
  previous = _read_timings(os.path.join(workdir, "timings.json"), config.variant)
  outputs, compile_split = {}, {}
  stages = tuple(stages) if stages else tuple(config.stages)
  for stage in stages:
    if stage not in STAGES:
      raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
  if processes is None:
    processes = int(config.get("processes", 1) or 1)
  processes = max(1, min(int(processes), len(stages)))

  def done(stage: str, result: tuple) -> None:
    outputs[stage], compile_split[stage] = result
    split = compile_split[stage]
    _log(f"stage {stage} done in {split['seconds']:.1f} s "
         f"({compile_cache.describe(split)})")

  threads = int(config.get("threads", 0) or 0)
  os.environ[threads_lib.ENV] = str(threads)   # inherited by every spawned worker
  if threads > 0 and processes == 1 and not threads_lib.limit(threads):
    _log(f"threads = {threads} not applied in this process (JAX had started, or this "
         "platform sets no CPU affinities): its numbers can differ in the last digits "
         "from a run with that many threads")
  start = time.perf_counter()
  if processes > 1:
    _log(f"{len(stages)} stages in {processes} processes, longest first")
    _stages_in_processes(config, workdir, stages, processes, done)
  else:
    for i, stage in enumerate(stages):
      _log(f"stage {i + 1}/{len(stages)}: {STAGES[stage][0]}")
      done(stage, _run_stage(stage, config[stage], workdir))
  wall = time.perf_counter() - start
  compile_split = {s: compile_split[s] for s in stages}  # the report's order
  timings = {s: compile_split[s]["seconds"] for s in stages}
  sections = [(STAGES[s][0], outputs[s]["markdown"]) for s in stages]
  results = {s: outputs[s]["data"] for s in stages}
  reading = (reading_fn or reading_lib.reading)(results)
  rows = scorecard_lib.scorecard(scorecard_lib.collect(results)) + _extra_claims(results)
  write_json_atomic(os.path.join(workdir, "scorecard.json"), rows, sort_keys=False)
  paths = write_report(workdir, config, sections, timings, reading, started,
                       scorecard_lib.scorecard_markdown(rows), compile_split, previous,
                       wall=wall, processes=processes)
  write_json_atomic(os.path.join(workdir, "timings.json"),
                    dict(variant=config.variant, started=started, wall=wall,
                         processes=processes, stages=compile_split),
                    sort_keys=False)
  paths["scorecard_json"] = os.path.join(workdir, "scorecard.json")
  _log(f"report: {paths['markdown']} and {paths['html']} ({wall:.0f} s wall"
       + (f", {sum(timings.values()):.0f} s of stage time in {processes} processes)"
          if processes > 1 else ")"))
  return {"paths": paths, "timings": timings, "compile": compile_split, "results": results,
          "wall": wall}
