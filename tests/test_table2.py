"""End-to-end tests of the Table 2 protocol (crbm_jax.paper.table2) on the smoke config."""
import csv
import json
import os

import numpy as np
import pytest

from crbm_jax.paper import table2
from crbm_jax.util.atomic import write_json_atomic
from crbm_jax.util.stats import mean_stderr
from crbm_jax.configs import table2 as table2_config


def _smoke():
  c = table2_config.get_config("smoke")
  c.shard = False
  return c


def _same_values(rows, ref_rows):
  """Equal tables: the same fits, computed in other blocks (other block shapes round
  differently in the last bits: 'map' and 'vmap' compute a stage's fits together)."""
  assert [r["pattern"] for r in rows] == [r["pattern"] for r in ref_rows]
  for got, want in zip(rows, ref_rows):
    np.testing.assert_allclose(got["values"], want["values"], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("smoke"))
  return workdir, table2.run_table2(_smoke(), workdir)


@pytest.mark.extended
def test_smoke_protocol_writes_the_table(smoke_run):
  workdir, out = smoke_run
  (res,) = out["datasets"]
  patterns = [r["pattern"] for r in res["rows"]]
  assert patterns == ["+++", "++-", "+-+", "+--", "-++", "-+-", "--+", "---", "baseline"]
  for row in res["rows"]:
    assert len(row["values"]) == 2 and np.all(np.isfinite(row["values"]))
    assert row["mean"] == pytest.approx(np.mean(row["values"]))
    assert row["stderr"] == pytest.approx(np.std(row["values"], ddof=1) / np.sqrt(2))
  with open(os.path.join(workdir, "table2.json")) as f:
    assert json.load(f)["datasets"][0]["rows"] == json.loads(json.dumps(res["rows"]))
  with open(os.path.join(workdir, "table2.csv")) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 9 and float(rows[-1]["paper_mean"]) == -1.3
  md = open(os.path.join(workdir, "table2.md")).read()
  assert "SIMULATED" in md and "-1.3000 ± 0.0070" in md


@pytest.mark.extended
def test_selection_picks_the_best_mean_validation_configuration(smoke_run):
  workdir, out = smoke_run
  (res,) = out["datasets"]
  # Recompute from the stored per-fit files, independently of run_dataset.
  by_point = {}
  for root, _, files in os.walk(os.path.join(workdir, "results")):
    for name in files:
      if name.endswith(".json"):
        with open(os.path.join(root, name)) as f:
          r = json.load(f)
        if r["stage"] == "grid":
          by_point.setdefault(tuple(r["point"]), []).append(r["best_val_pl"])
  assert len(by_point) == 2 and all(len(v) == 2 for v in by_point.values())
  means = {p: np.mean(v) for p, v in by_point.items()}
  assert means[max(means, key=means.get)] > min(means.values())
  assert tuple(res["selected"].values()) == max(means, key=means.get)


@pytest.mark.extended
@pytest.mark.parametrize("method", ["vmap", "auto"])
def test_interrupted_run_resumes_to_the_same_table(smoke_run, tmp_path, monkeypatch, method):
  # Either method (one call per stage; 'auto' is 'map' on a CPU): killed in the
  # combination stage's call, after the grid stage's results were stored.
  _, reference = smoke_run
  calls = []
  config = _smoke()
  config.method = method
  real_stage = table2.Runner._stage_fn

  def dying_stage(self, *args):
    fn = real_stage(self, *args)

    def call(*a):
      if len(calls) == 1:
        raise KeyboardInterrupt("simulated kill")
      calls.append(1)
      return fn(*a)

    return call

  monkeypatch.setattr(table2.Runner, "_stage_fn", dying_stage)
  with pytest.raises(KeyboardInterrupt):
    table2.run_table2(config, str(tmp_path))
  monkeypatch.undo()
  finished = sum(name.endswith(".json") and not name.startswith(".tmp")
                 for _, _, files in os.walk(tmp_path / "results") for name in files)
  total = 2 * 2 + 8 * 2  # grid points x splits + combinations x splits
  assert 0 < finished < total
  resumed = table2.run_table2(config, str(tmp_path))
  (res,) = resumed["datasets"]
  assert res["computed_fits"] == total - finished
  ref_rows = reference["datasets"][0]["rows"]
  _same_values(res["rows"], ref_rows)
  again = table2.run_table2(config, str(tmp_path))
  assert again["datasets"][0]["computed_fits"] == 0


@pytest.mark.extended
def test_rows_the_data_cannot_support_are_reported_missing(tmp_path):
  # Aggregated (clip, track, tag) data: no users; every clip one observation.
  rng = np.random.default_rng(0)
  lines = ["clip\ttrack\ttag"]
  for clip in range(60):
    for tag in rng.choice(8, size=3, replace=False):
      lines.append(f"c{clip}\tt{clip // 3}\ttag{tag}")
  path = tmp_path / "agg.tsv"
  path.write_text("\n".join(lines) + "\n")
  c = _smoke()
  c.datasets, c.tags = (), str(path)
  out = table2.run_table2(c, str(tmp_path / "work"))
  rows = {r["pattern"]: r for r in out["datasets"][0]["rows"]}
  assert rows["-+-"]["values"] is not None and rows["---"]["values"] is not None
  assert "single observation" in rows["--+"]["missing"]
  assert "no user column" in rows["+--"]["missing"]
  assert sum(r["values"] is not None for r in rows.values()) == 3  # -+-, ---, baseline


def test_mean_stderr_matches_the_formula():
  m, se = mean_stderr([1.0, 2.0, 4.0])
  assert m == pytest.approx(7 / 3)
  assert se == pytest.approx(np.std([1, 2, 4], ddof=1) / np.sqrt(3))


def test_atomic_write_leaves_no_temporary_files(tmp_path):
  write_json_atomic(str(tmp_path / "a" / "x.json"), {"v": 1})
  write_json_atomic(str(tmp_path / "a" / "x.json"), {"v": 2})
  assert os.listdir(tmp_path / "a") == ["x.json"]
  assert json.loads((tmp_path / "a" / "x.json").read_text()) == {"v": 2}


def test_progress_counts_rate_and_eta_with_a_fake_clock():
  import io  # pylint: disable=import-outside-toplevel
  from crbm_jax.util.progress import Progress  # pylint: disable=import-outside-toplevel
  now = [0.0]
  out = io.StringIO()
  p = Progress(10, "grid", "fits", stream=out, min_interval=0.0, clock=lambda: now[0])
  p.skip(4)             # found finished on resume: not part of the rate
  now[0] = 2.0
  p.update(2)           # 2 fits in 2 s -> 1 fit/s, 4 left -> 4 s
  assert p.rate == pytest.approx(1.0) and p.eta == pytest.approx(4.0)
  assert "6/10 (60%) 1.00 fits/s" in out.getvalue().splitlines()[-1]
  assert "ETA 0:04" in out.getvalue().splitlines()[-1]


@pytest.mark.extended
def test_two_processes_sharing_a_workdir_split_the_tasks(smoke_run, tmp_path):
  import threading  # pylint: disable=import-outside-toplevel
  _, reference = smoke_run
  outs = {}

  def worker(index):
    c = _smoke()
    c.task_shard, c.task_wait_s = (index, 2), 120.0
    outs[index] = table2.run_table2(c, str(tmp_path / "shared"))

  threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(timeout=300)
  computed = [outs[i]["datasets"][0]["computed_fits"] for i in range(2)]
  assert sum(computed) == 2 * 2 + 8 * 2 and min(computed) > 0
  for i in range(2):
    _same_values(outs[i]["datasets"][0]["rows"], reference["datasets"][0]["rows"])


@pytest.mark.extended
def test_jax_distributed_processes_split_the_tasks(smoke_run, tmp_path):
  # Two real processes joined by jax.distributed (the launcher's --distributed): each
  # fits its share into the shared workdir, and the table equals the one-process run's.
  import socket  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  _, reference = smoke_run
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  workdir = tmp_path / "shared"
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  procs = [subprocess.Popen(
      [sys.executable, os.path.join(root, "experiments", "table2_pseudolikelihood.py"),
       f"--config={os.path.join(root, 'crbm_jax', 'configs', 'table2.py')}:smoke",
       "--config.shard=False", f"--workdir={workdir}", "--distributed",
       f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}"],
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=root)
      for i in range(2)]
  logs = [p.communicate(timeout=600)[0].decode(errors="replace") for p in procs]
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-3000:]
  with open(workdir / "table2.json") as f:
    out = json.load(f)
  computed = out["datasets"][0]["computed_fits"]
  assert 0 < computed < 2 * 2 + 8 * 2  # the last writer fitted only its share
  _same_values(out["datasets"][0]["rows"], reference["datasets"][0]["rows"])


@pytest.mark.extended
def test_model_axis_sharded_over_two_devices_gives_the_same_table(smoke_run, tmp_path):
  # The Runner's NamedSharding path (2 host devices from conftest) end to end: block
  # trainer, W_aux [A, M, V] and pseudo-likelihood sharded along the model axis.
  import jax  # pylint: disable=import-outside-toplevel
  assert len(jax.local_devices()) >= 2, "conftest should give 2 host devices"
  _, reference = smoke_run
  c = _smoke()
  c.shard, c.method = True, "vmap"  # the one-call path shards the model axis too
  out = table2.run_table2(c, str(tmp_path))
  for got, want in zip(out["datasets"][0]["rows"], reference["datasets"][0]["rows"]):
    assert got["pattern"] == want["pattern"]
    np.testing.assert_allclose(got["values"], want["values"], rtol=1e-4, atol=1e-5)
