"""A Ctrl-C (util.interrupt) removes the temporaries of outputs being written, and an
older output being replaced stays whole: ``atomic.replace_folder_atomic`` and
``atomic.write_bytes_atomic`` register their temporaries with ``interrupt.scratch``."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import os, sys, time
    from crbm_jax.util import atomic, interrupt
    out = sys.argv[1]
    interrupt.exit_on_interrupt("probe", "nothing kept")
    def fill(tmp):
      with open(os.path.join(tmp, "a.txt"), "w") as f:
        f.write("new")
      open(out + ".ready", "w").close()
      time.sleep(60)  # the Ctrl-C comes here, with the folder half-written
    if sys.argv[2] == "folder":
      atomic.replace_folder_atomic(os.path.join(out, "model"), fill, "model")
    else:
      def chunks():
        yield b"x" * 1000
        open(out + ".ready", "w").close()
        time.sleep(60)
        yield b"y"
      from crbm_jax.data import tagtable
      tagtable.write_table_chunks(os.path.join(out, "t.tsv"), ("clip", "tag"),
                                  ([("c", "t")] for _ in chunks()))
""")


@pytest.mark.parametrize("kind", ["folder", "table"])
def test_ctrl_c_while_writing_leaves_the_old_output_and_no_temporary(tmp_path, kind):
  out = tmp_path / "out"
  os.makedirs(out / "model")
  (out / "model" / "a.txt").write_text("old")
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out), kind], env=env,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.monotonic() + 60
  while not os.path.exists(str(out) + ".ready") and time.monotonic() < deadline:
    assert proc.poll() is None, proc.communicate()[1]
    time.sleep(0.02)
  assert os.listdir(out) != ["model"], "the writer made no temporary: nothing was tested"
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=30)
  assert proc.returncode == 130, err
  assert err.strip() == "probe: interrupted; nothing kept", err
  assert sorted(os.listdir(out)) == ["model"]  # no .tmp-*, no .old-*, no t.tsv
  assert (out / "model" / "a.txt").read_text() == "old"
