"""Tests for crbm_jax.autotag.features: primitives vs librosa, known answers, batch API."""
import ast
import glob
import os

import numpy as np
import pytest
import soundfile

from crbm_jax.autotag import audio, demo_audio_paths
from crbm_jax.autotag import features as F

librosa = pytest.importorskip("librosa")

SR = 22050
CONFIG = F.FeatureConfig()
SHARED_AUDIO = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "audio")


def _music_like(seconds=3.0, seed=0):
  """Noise plus tones with an envelope: a signal with varied spectra."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * SR)) / SR
  y = 0.05 * rng.normal(size=t.shape)
  for f in (220.0, 330.0, 1250.0):
    y += 0.2 * np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * 1.7 * t))
  return y.astype(np.float32)


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [
    (22050, 2048, 40, 0.0, None), (22050, 1024, 40, 0.0, None),
    (16000, 512, 26, 50.0, 7000.0), (44100, 4096, 128, 20.0, 16000.0)])
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax):
  ours = F.mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
  ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                            dtype=np.float64)
  np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-10 * ref.max())


def test_mel_scale_matches_librosa_slaney_and_round_trips():
  hz = np.array([0.0, 100.0, 999.0, 1000.0, 1001.0, 4000.0, 11025.0])
  np.testing.assert_allclose(F.hz_to_mel(hz), librosa.hz_to_mel(hz), rtol=1e-12)
  np.testing.assert_allclose(F.mel_to_hz(F.hz_to_mel(hz)), hz, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("center", [True, False])
def test_power_spectrogram_matches_librosa_stft(center):
  y = _music_like(1.0).astype(np.float64)
  ours = F.power_spectrogram(y, 2048, 512, center)
  ref = np.abs(librosa.stft(y, n_fft=2048, hop_length=512, center=center)) ** 2
  assert ours.shape == ref.shape
  np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9 * ref.max())


@pytest.mark.parametrize("center", [True, False])
def test_mel_spectrogram_matches_librosa(center):
  y = _music_like(2.0).astype(np.float64)
  config = F.FeatureConfig(center=center)
  ours = F.mel_power(y, config)
  ref = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=2048, hop_length=512, n_mels=40,
                                       center=center)
  np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-8 * ref.max())


def test_power_to_db_matches_librosa():
  s = np.abs(np.random.default_rng(1).normal(size=(5, 30))) ** 3
  s[0, 0] = 0.0
  for top_db in (80.0, 20.0, None):
    np.testing.assert_allclose(F.power_to_db(s, 1e-10, top_db),
                               librosa.power_to_db(s, amin=1e-10, top_db=top_db), rtol=1e-10)


@pytest.mark.parametrize("center", [True, False])
def test_mfcc_matches_librosa(center):
  y = _music_like(2.0).astype(np.float64)
  config = F.FeatureConfig(center=center)
  ref = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=18, n_fft=2048, hop_length=512, n_mels=40,
                             center=center)
  np.testing.assert_allclose(F.mfcc(y, config), ref, rtol=1e-3, atol=1e-3)


def test_float32_fast_path_matches_float64_and_batched_clips_match_single_clips():
  y = _music_like(3.0, seed=5)
  mel32 = F.mel_power(y, CONFIG)  # float32 fast path (banded filters, reused buffer)
  mel64 = F.mel_power(y.astype(np.float64), CONFIG)
  assert mel32.dtype == np.float32 and mel32.shape == mel64.shape
  np.testing.assert_allclose(mel32, mel64, rtol=2e-4, atol=1e-6 * mel64.max())
  clips = [y[:SR], y[SR:int(2.7 * SR)], y]
  batch = F.clips_features(clips, SR, CONFIG)
  for c, row in zip(clips, batch):  # exact: the same computation on the same samples
    np.testing.assert_array_equal(row, F.clip_features(c, SR, CONFIG))
  ref = F.clip_features(y, SR, CONFIG)  # float64 statistics of float32 MFCCs
  f64 = np.concatenate([F.timbral_features(F.mfcc(y.astype(np.float64), CONFIG)),
                        F.rhythm_features(mel64, CONFIG)])
  np.testing.assert_allclose(ref, f64, rtol=1e-3, atol=1e-3)


def test_dct_matrix_is_scipy_orthonormal_dct():
  import scipy.fft  # pylint: disable=import-outside-toplevel
  x = np.random.default_rng(0).normal(size=(40, 7))
  np.testing.assert_allclose(F.dct_matrix(18, 40) @ x,
                             scipy.fft.dct(x, type=2, norm="ortho", axis=0)[:18],
                             rtol=1e-10, atol=1e-12)


def test_extract_features_cuts_given_segments_and_reports_unusable_ones(tmp_path):
  p = tmp_path / "t.wav"
  y = _music_like(4.0, seed=6)
  soundfile.write(p, y, SR)
  out = F.extract_features([str(p)], CONFIG, num_workers=1, progress=False,
                           segments=[[(1.0, 2.0), (3.5, 2.0), (4.5, 1.0), (0.0, 0.05)]],
                           min_clip_seconds=0.25)
  assert out.clip_ids == [f"{p}#0", f"{p}#1"]
  np.testing.assert_allclose(out.durations, [2.0, 0.5])  # the second is cut at the end
  assert [k for _, k, _ in out.skipped_segments] == [2, 3]
  assert "after the end" in out.skipped_segments[0][2]
  assert "too short" in out.skipped_segments[1][2]
  y_read = soundfile.read(p, dtype="float32")[0]  # exact: the same samples, same code
  np.testing.assert_array_equal(out.features[0],
                                F.clip_features(y_read[SR:3 * SR], SR, CONFIG))


def test_normalized_autocorrelation_matches_brute_force():
  env = np.random.default_rng(2).random((3, 40))
  ours = F.normalized_autocorrelation(env, 10)
  for b in range(3):
    x = env[b] - env[b].mean()
    full = np.correlate(x, x, mode="full")[x.shape[0] - 1:]
    np.testing.assert_allclose(ours[b], full[1:11] / full[0], rtol=1e-10)


def _click_train(period_frames, seconds=10.0, seed=0):
  n = int(seconds * SR)
  y = 1e-4 * np.random.default_rng(seed).normal(size=n)
  pos = (np.arange(0, n / (512 * period_frames)) * period_frames * 512).astype(int)
  y[pos[pos < n]] = 1.0
  return y.astype(np.float32)


def test_click_train_rhythm_autocorrelation_peaks_at_its_period():
  rhythm = F.clip_features(_click_train(20), SR, CONFIG)[CONFIG.num_timbral:]
  rhythm = rhythm.reshape(CONFIG.rhythm_bands, CONFIG.rhythm_lags)
  for band in rhythm:
    assert int(np.argmax(band[2:])) + 3 == 20  # lags start at 1; skip lags 1-2
    assert band[19] > 0.8


def test_click_train_with_fractional_period_peaks_at_a_neighbouring_lag():
  period = 0.5 * SR / 512  # 120 beats per minute = 21.5 frames
  rhythm = F.clip_features(_click_train(period), SR, CONFIG)[CONFIG.num_timbral:]
  for band in rhythm.reshape(CONFIG.rhythm_bands, CONFIG.rhythm_lags):
    assert int(np.argmax(band[2:32])) + 3 in (21, 22)


def test_pure_tone_has_near_zero_mfcc_covariance_and_finite_features():
  t = np.arange(10 * SR) / SR
  tone = 0.5 * np.sin(2 * np.pi * 440.0 * t)
  noise = np.random.default_rng(3).normal(size=t.shape) * 0.1
  f_tone, f_noise = F.clip_features(tone, SR, CONFIG), F.clip_features(noise, SR, CONFIG)
  assert f_tone.shape == (389,) and f_tone.dtype == np.float32
  assert np.all(np.isfinite(f_tone)) and np.all(np.isfinite(f_noise))
  cov_tone = np.abs(f_tone[18:189]).max()
  cov_noise = np.abs(f_noise[18:189]).max()
  assert cov_tone < 1e-3 and cov_noise > 0.1
  # A steady tone's onset envelopes are 0 by construction (rises below
  # F.ENVELOPE_FLOOR_DB are rounding, not onsets), so their autocorrelations are exactly
  # 0 on any machine (without the floor, float32 rounding left an envelope whose energy
  # was within 3x of the zero-variance threshold).
  np.testing.assert_array_equal(f_tone[189:], 0.0)


@pytest.mark.parametrize("seconds", [10.0, 3.3, 0.5])
def test_silent_clip_gives_finite_features(seconds):
  # Exactly zero by construction, on any machine (issue 25): the MFCC deviations are the
  # DCT of (dB frames - first dB frame), which is the DCT of exact zeros for silence, and
  # the onset envelopes of a constant dB spectrum are exact zeros.
  f = F.clip_features(np.zeros(int(seconds * SR), np.float32), SR, CONFIG)
  assert np.all(np.isfinite(f))
  np.testing.assert_array_equal(f[CONFIG.n_mfcc:], 0.0)


def test_equal_frames_give_exactly_zero_covariance_whatever_the_summation_order():
  # A column-permuted and a much longer copy of a constant mel spectrogram sum in other
  # orders (and other BLAS blockings); the covariance is exactly 0 for each.
  rng = np.random.default_rng(7)
  column = rng.random(CONFIG.n_mels)[:, None] * 1e-3
  for frames in (3, 97, 4001):
    mel = np.repeat(column, frames, axis=1)
    f = F.timbral_features_from_mel(mel, CONFIG)
    np.testing.assert_array_equal(f[CONFIG.n_mfcc:], 0.0)
    assert np.all(np.isfinite(f)) and np.any(f[:CONFIG.n_mfcc] != 0.0)


def test_clip_features_rejects_wrong_rate_and_too_short_clip():
  with pytest.raises(ValueError, match="sample rate"):
    F.clip_features(np.ones(SR), 44100, CONFIG)
  with pytest.raises(ValueError, match="too short"):
    F.clip_features(np.ones(2000), SR, CONFIG)


def test_feature_count_is_389_by_default_and_follows_config():
  assert CONFIG.num_features == 389
  small = F.FeatureConfig(n_mfcc=13, rhythm_lags=10)
  y = _music_like(3.0)
  assert F.clip_features(y, SR, small).shape == (13 + 91 + 40,)
  assert small.digest() != CONFIG.digest()


def test_standardize_handles_zero_variance_and_reuses_statistics():
  x = np.random.default_rng(4).normal(size=(50, 3)) * [1.0, 5.0, 0.0] + [0.0, 2.0, 7.0]
  z, mean, std = F.standardize(x)
  assert np.all(np.isfinite(z))
  np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-6)
  np.testing.assert_allclose(z.std(axis=0), [1.0, 1.0, 0.0], atol=1e-5)
  z2, _, _ = F.standardize(x[:5], mean, std)
  np.testing.assert_allclose(z2, z[:5], rtol=1e-6)


def _write_tracks(tmp_path):
  good = []
  for k in range(2):
    p = tmp_path / f"good{k}.wav"
    soundfile.write(p, _music_like(12.0, seed=k), SR)
    good.append(str(p))
  corrupt = tmp_path / "corrupt.wav"
  corrupt.write_bytes(b"RIFF????WAVEgarbage" * 10)
  empty = tmp_path / "empty.wav"
  empty.write_bytes(b"")
  silent = tmp_path / "silent.wav"
  soundfile.write(silent, np.zeros(12 * SR, np.float32), SR)
  short = tmp_path / "short.wav"
  soundfile.write(short, _music_like(4.0), SR)
  return good, [str(corrupt), str(empty), str(silent), str(short)]


def test_extract_features_skips_and_counts_bad_files(tmp_path):
  good, bad = _write_tracks(tmp_path)
  out = F.extract_features([good[0]] + bad + [good[1]], CONFIG, num_workers=1,
                           progress=False)
  assert out.features.shape == (10, 389) and np.all(np.isfinite(out.features))
  assert out.clip_ids[:2] == [f"{good[0]}#0", f"{good[0]}#1"]
  assert out.clip_ids[5] == f"{good[1]}#0"
  reasons = dict(out.skipped)
  assert list(reasons) == bad
  assert "cannot decode" in reasons[bad[0]]
  assert "silent" in reasons[bad[2]]
  assert "too short" in reasons[bad[3]]


def test_extract_features_cache_and_parallel_workers_give_identical_features(
    tmp_path, monkeypatch, capsys):
  good, _ = _write_tracks(tmp_path)
  cache = tmp_path / "cache"
  serial = F.extract_features(good, CONFIG, num_workers=1, cache_dir=str(cache),
                              progress=True)
  err = capsys.readouterr().err
  assert "features: 2/2 (100%)" in err and "files/s" in err
  assert len(os.listdir(cache)) == 2
  # Cached: decoding is not needed any more.
  monkeypatch.setattr(audio, "load_audio", lambda *a, **k: pytest.fail("not cached"))
  cached = F.extract_features(good, CONFIG, num_workers=1, cache_dir=str(cache),
                              progress=False)
  np.testing.assert_array_equal(cached.features, serial.features)
  monkeypatch.undo()
  parallel = F.extract_features(good, CONFIG, num_workers=2, progress=False)
  np.testing.assert_array_equal(parallel.features, serial.features)
  assert parallel.clip_ids == serial.clip_ids


def test_demo_audio_decodes_and_short_excerpt_is_skipped():
  paths = demo_audio_paths()
  assert len(paths) == 5
  out = F.extract_features(paths, CONFIG, num_workers=1, progress=False)
  assert out.features.shape == (20, 389) and np.all(np.isfinite(out.features))
  assert [os.path.basename(p) for p, _ in out.skipped] == ["sorohan_solo_trumpet.ogg"]


@pytest.mark.skipif(not os.path.isdir(SHARED_AUDIO), reason="no ../shared/data/audio")
def test_real_recordings_decode_to_389_finite_features():
  paths = sorted(glob.glob(os.path.join(SHARED_AUDIO, "*.ogg")))
  assert len(paths) == 8
  out = F.extract_features(paths, CONFIG, num_workers=1, progress=False)
  # The 5.3 s trumpet loop is shorter than one clip; the other 7 give 5 clips each.
  assert out.features.shape == (35, 389) and np.all(np.isfinite(out.features))
  assert len(out.skipped) == 1 and "too short" in out.skipped[0][1]


def test_autotag_package_does_not_import_jax():
  pkg = os.path.dirname(F.__file__)
  for path in glob.glob(os.path.join(pkg, "*.py")):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
      names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
               [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
      assert not any(n.split(".")[0] in ("jax", "jaxlib", "optax") for n in names), path



def test_autotag_modules_and_what_they_import_do_not_load_jax():
  # Transitively too: the host utilities they use (atomic writes, progress, statistics)
  # must not pull JAX in.
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  code = ("import sys, crbm_jax.autotag.protocol, crbm_jax.autotag.features, "
          "crbm_jax.autotag.audio; "
          "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'optax')))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True, timeout=120)
  assert out.stdout.strip() == "[]", out.stdout
