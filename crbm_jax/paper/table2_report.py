"""Table 2's report: the markdown table (ours beside the paper's), the CSV, and how the
grid point was chosen. Pure formatting of ``run_dataset``'s results (no JAX)."""
from __future__ import annotations

from typing import Optional

from crbm_jax.paper import published
from crbm_jax.util.stats import format_mean_se


def _paper_name(result) -> Optional[str]:
  return published.TABLE2_NAMES.get(result["name"])


def to_csv(results: list) -> str:
  lines = ["dataset,simulated,user,track,item,mean,stderr,num_splits,paper_mean,"
           "paper_stderr,missing"]
  for res in results:
    paper = published.TABLE2.get(_paper_name(res) or "", {})
    for row in res["rows"]:
      pat = row["pattern"]
      cols = list(pat) if pat != "baseline" else ["baseline", "", ""]
      mean = row.get("mean", "")
      se = row.get("stderr", "")
      pm, ps = paper.get(pat, ("", ""))
      n = len(row["values"]) if row["values"] else 0
      missing = row.get("missing", "").replace('"', "'")
      lines.append(",".join(str(x) for x in [
          f'"{res["name"]}"', res["simulated"], *cols, mean, se, n, pm, ps,
          f'"{missing}"']))
  return "\n".join(lines) + "\n"


def _search_lines(res) -> list:
  """How the grid point was chosen, and both picks when both searches ran."""
  a = res.get("adaptive")
  if not a:
    return []
  fmt = lambda p: ", ".join(f"{k}={v:g}" for k, v in p.items())
  lines = [f"Adaptive search (successive halving, eta {a['halving']['eta']:g}, first rung "
           f"{a['halving']['first_rung']} epoch(s)): picked {fmt(a['selected'])}, mean "
           f"validation PL {a['mean_val_pl']:.4f}; {a['model_epochs']} model-epochs "
           f"({100 * a['model_epochs'] / a['exhaustive_model_epochs']:.1f}% of the "
           f"exhaustive grid's), {a['seconds']:.1f} s.  "]
  if "exhaustive_selected" in a:
    lines.append(
        f"Exhaustive grid: picked {fmt(a['exhaustive_selected'])}, mean validation PL "
        f"{format_mean_se(a['exhaustive_mean_val_pl'], a['exhaustive_val_pl_stderr'])}, "
        f"{a['exhaustive_seconds']:.1f} s; the adaptive pick's exhaustive mean validation "
        f"PL {a['pick_exhaustive_mean_val_pl']:.4f} is "
        f"{'within' if a['within_one_stderr'] else 'NOT within'} one standard error of "
        f"the winner's. The rows below use the "
        f"{'exhaustive' if res['search'] == 'both' else 'adaptive'} pick.  ")
  return lines + [""]


def to_markdown(results: list) -> str:
  out = ["# Table 2: test balanced per-bit log pseudo-likelihood (less negative is better)",
         "", "Mean ± standard error over splits. User / Track / Item: auxiliary variables "
         "present (+) or absent (−); Item is the clip (the artist for Last.fm). "
         "Paper: Mandel, Eck & Bengio (2010), Table 2.", ""]
  for res in results:
    paper_name = _paper_name(res)
    paper = published.TABLE2.get(paper_name or "", {})
    sim = " — SIMULATED data" if res["simulated"] else ""
    out += [f"## {res['name']}{sim}", "", f"{res['label']}  ",
            f"{res['num_observations']} observations, {res['num_visible']} tags; grid "
            f"conditioned on `{res['grid_group']}`; selected {res['selected']}", "",
            *_search_lines(res),
            f"| User | Track | Item | ours | paper ({paper_name or 'no counterpart'}) |",
            "|---|---|---|---|---|"]
    notes = []
    for row in res["rows"]:
      pat = row["pattern"]
      cols = " | ".join(c.replace("-", "−") for c in pat) if pat != "baseline" else \
          "baseline | | "
      ours = format_mean_se(row["mean"], row["stderr"]) if row["values"] else "missing"
      p = paper.get(pat)
      theirs = format_mean_se(*p) if p else ""
      if row["values"] is None and not p:
        notes.append(f"- {pat}: {row['missing']}")
        continue
      out.append(f"| {cols} | {ours} | {theirs} |")
      if row["values"] is None:
        notes.append(f"- {pat}: {row['missing']}")
    if notes:
      out += ["", "Rows not run:"] + sorted(set(notes))
    if res.get("qualitative"):
      out += ["", f"W_aux of the most observed `{res['groups'][-1]}` entities "
              "(item-only model, split 0):", "", "| entity | obs. | most positive | "
              "most negative |", "|---|---|---|---|"]
      for q in res["qualitative"]:
        pos = ", ".join(f"{t} ({w:+.2f})" for t, w in q["positive"])
        neg = ", ".join(f"{t} ({w:+.2f})" for t, w in q["negative"])
        out.append(f"| {q['entity']} | {q['observations']} | {pos} | {neg} |")
    out.append("")
  return "\n".join(out)
