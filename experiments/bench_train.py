"""Benchmark: one CD-1 epoch of crbm_jax vs scikit-learn's BernoulliRBM vs plain numpy,
and the exact pseudo-likelihood, on synthetic data of the paper's sizes.

  python experiments/bench_train.py [--sizes S,M] [--batch_sizes 100] [--repeats 3]

S: N=2600, V=200, H=100, 1300 aux entities (the Mechanical Turk study's size);
M: N=13000, V=500, H=200, 4750 aux entities (MajorMiner's size); ~4% of bits are 1.
Everything is measured in this one run, on this machine; ratios are against baselines
measured in the same run. GFLOP/s count the five V x H matrix products of a CD-1 step
(10 N V H flops per epoch) against a float32 matmul peak measured here.
"""
from __future__ import annotations

from absl import app, flags
import jax
import numpy as np

from benchlib import best_time, matmul_peak, synthetic
from crbm_jax import learn
from crbm_jax.model import init_params, pseudo_log_likelihood

SIZES = {"S": (2600, 200, 100, 1300), "M": (13000, 500, 200, 4750)}
FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["S", "M"], "Problem sizes to run (S, M).")
flags.DEFINE_list("batch_sizes", ["100"], "Minibatch sizes (all three implementations).")
flags.DEFINE_integer("repeats", 3, "Timed repetitions (the minimum is reported).")


def numpy_cd1_epoch(x, aux, W, W_aux, b, c, batch_size, lr, rng):
  """A plain numpy CD-1 epoch with the same auxiliary terms and updates (no momentum)."""
  sig = lambda z: 1.0 / (1.0 + np.exp(-z))
  order = rng.permutation(len(x))
  for start in range(0, len(x) - batch_size + 1, batch_size):
    idx = order[start:start + batch_size]
    v0, a = x[idx], aux[idx]
    vb = b + W_aux[a].sum(1)
    h0 = sig(v0 @ W + c)
    h = (rng.random(h0.shape, dtype=np.float32) < h0).astype(np.float32)
    vk = sig(h @ W.T + vb)
    hk = sig(vk @ W + c)
    W += lr / batch_size * (v0.T @ h0 - vk.T @ hk)
    b += lr / batch_size * (v0 - vk).sum(0)
    c += lr / batch_size * (h0 - hk).sum(0)
    np.add.at(W_aux, a.reshape(-1), np.repeat(lr / batch_size * (v0 - vk), a.shape[1], 0))


def main(argv):
  del argv
  repeats = FLAGS.repeats
  peak = matmul_peak(repeats)
  print(f"float32 matmul peak (2048^3, jax): {peak:.1f} GFLOP/s on {jax.devices()[0]}")
  from sklearn.neural_network import BernoulliRBM
  for size in FLAGS.sizes:
    n, v, h, a = SIZES[size]
    x, aux = synthetic(n, v, a)
    for batch_size in map(int, FLAGS.batch_sizes):
      config = learn.TrainConfig(num_hidden=h, batch_size=batch_size)
      data = learn.pad_dataset(learn.make_dataset(x, aux), batch_size)
      hp = learn.make_hparams()
      learner = learn.cd(config, a)
      state = learner.init(jax.random.key(0), data, hp)
      epoch = jax.jit(lambda k, s: learn.run_epoch(k, learner, s, data, hp, batch_size))
      jax.block_until_ready(epoch(jax.random.key(0), state))
      keys = iter(jax.random.split(jax.random.key(1), repeats))
      ours = best_time(lambda: jax.block_until_ready(epoch(next(keys), state)), repeats)
      # The same without auxiliary terms: what scikit-learn and plain CD-1 compute.
      plain = data._replace(aux=data.aux[:, :0])
      plain_state = learner.init(jax.random.key(0), plain, hp)
      epoch_plain = jax.jit(lambda k, s: learn.run_epoch(k, learner, s, plain, hp, batch_size))
      jax.block_until_ready(epoch_plain(jax.random.key(0), plain_state))
      keys = iter(jax.random.split(jax.random.key(2), repeats))
      ours_plain = best_time(lambda: jax.block_until_ready(epoch_plain(next(keys), plain_state)),
                             repeats)
      rbm = BernoulliRBM(n_components=h, batch_size=batch_size, n_iter=1, learning_rate=0.05,
                         random_state=0)
      sk = best_time(lambda: rbm.fit(x), repeats)
      rng = np.random.default_rng(0)
      W = rng.normal(0, 0.01, (v, h)).astype(np.float32)
      params_np = (W, np.zeros((a, v), np.float32), np.zeros(v, np.float32),
                   np.zeros(h, np.float32))
      npy = best_time(lambda: numpy_cd1_epoch(x, aux, *[p.copy() for p in params_np],
                                              batch_size, 0.05, rng), repeats)
      gflops = 10 * n * v * h / 1e9
      print(f"[{size}] N={n} V={v} H={h} aux={a} batch={batch_size}: CD-1 epoch "
            f"crbm_jax {ours * 1e3:.1f} ms ({gflops / ours:.1f} GFLOP/s, "
            f"{100 * gflops / ours / peak:.0f}% of peak); without aux terms "
            f"{ours_plain * 1e3:.1f} ms | sklearn BernoulliRBM (no aux) {sk * 1e3:.1f} ms "
            f"(x{sk / ours:.2f} vs ours with aux, x{sk / ours_plain:.2f} without) | numpy "
            f"CD-1 with aux {npy * 1e3:.1f} ms (x{npy / ours:.2f})", flush=True)
  # Exact pseudo-likelihood of M-size held-out data: 2600 x 500 bits, H = 200.
  n, v, h, a = SIZES["M"]
  x, aux = synthetic(2600, v, a, seed=1)
  params = init_params(jax.random.key(0), v, h, a, weight_scale=0.3)
  pll = jax.jit(pseudo_log_likelihood)
  jax.block_until_ready(pll(params, x, aux))
  t = best_time(lambda: jax.block_until_ready(pll(params, x, aux)), repeats)
  print(f"exact pseudo-likelihood, 2600 x 500 bits, H=200: {t * 1e3:.1f} ms "
        f"({2600 * 500 * 200 / t / 1e9:.2f} G (bit, hidden) terms/s)")


if __name__ == "__main__":
  app.run(main)
