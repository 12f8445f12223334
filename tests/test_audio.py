"""Tests for crbm_jax.autotag.audio: decoding, resampling, clip placement, bad audio."""
import numpy as np
import pytest
import soundfile

from crbm_jax.autotag import audio

SR = 22050


def _tone(seconds, sr=SR, freq=440.0, amp=0.5):
  t = np.arange(int(seconds * sr)) / sr
  return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(y, sr):
  spec = np.abs(np.fft.rfft(y * np.hanning(y.shape[0])))
  return np.fft.rfftfreq(y.shape[0], 1 / sr)[np.argmax(spec)]


MP3 = pytest.param("MP3", "MPEG_LAYER_III", marks=pytest.mark.skipif(
    "MP3" not in soundfile.available_formats(), reason="libsndfile without MP3"))


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"),
                                         ("OGG", "VORBIS"), MP3])
def test_load_audio_decodes_each_format_to_mono_at_target_rate(tmp_path, fmt, subtype):
  left, right = _tone(2.0, 44100, 1000.0), _tone(2.0, 44100, 1000.0, amp=0.1)
  path = tmp_path / f"x.{fmt.lower()}"
  soundfile.write(path, np.stack([left, right], 1), 44100, format=fmt, subtype=subtype)
  y, sr = audio.load_audio(path, SR)
  assert sr == SR and y.dtype == np.float32 and y.ndim == 1
  assert abs(y.shape[0] - 2.0 * SR) <= 2
  assert abs(_peak_hz(y, SR) - 1000.0) < 2.0
  # Downmix is the channel mean: amplitude (0.5 + 0.1) / 2.
  assert np.max(np.abs(y[SR // 2:-SR // 2])) == pytest.approx(0.3, abs=0.02)


def test_resample_keeps_frequency_and_length():
  y = _tone(1.0, 48000, 3000.0)
  out = audio.resample(y, 48000, SR)
  assert out.shape[0] == SR
  assert abs(_peak_hz(out, SR) - 3000.0) < 2.0
  np.testing.assert_array_equal(audio.resample(y, 48000, 48000), y)


def test_clip_starts_centres_clips_at_k_plus_half_over_k():
  np.testing.assert_allclose(audio.clip_starts(100.0, 5, 10.0), [5, 25, 45, 65, 85])


def test_clip_starts_clamps_to_track_when_clips_overlap():
  # Centres 3, 9, 15, 21, 27 -> starts -2, 4, 10, 16, 22 clamped into [0, 20].
  np.testing.assert_allclose(audio.clip_starts(30.0, 5, 10.0), [0, 4, 10, 16, 20])


def test_clip_starts_rejects_track_shorter_than_a_clip():
  with pytest.raises(ValueError, match="shorter than one"):
    audio.clip_starts(9.9, 5, 10.0)


def test_cut_clips_returns_the_slices_at_the_starts():
  sr = 100
  y = np.arange(60 * sr, dtype=np.float32)
  clips, starts = audio.cut_clips(y, sr, 5, 10.0)
  assert clips.shape == (5, 10 * sr)
  np.testing.assert_allclose(starts, [1, 13, 25, 37, 49])
  for clip, s in zip(clips, starts):
    np.testing.assert_array_equal(clip, y[int(s * sr):int(s * sr) + 10 * sr])


def test_missing_file_raises_audio_error_naming_it(tmp_path):
  path = tmp_path / "nope.wav"
  with pytest.raises(audio.AudioError, match="nope.wav: file not found"):
    audio.load_audio(path)


def test_corrupt_file_raises_audio_error(tmp_path):
  path = tmp_path / "corrupt.ogg"
  path.write_bytes(np.random.default_rng(0).bytes(4000))
  with pytest.raises(audio.AudioError, match="corrupt.ogg: cannot decode") as e:
    audio.load_audio(path)
  assert isinstance(e.value, ValueError) and e.value.path == str(path)


def test_empty_file_raises_audio_error(tmp_path):
  zero_bytes = tmp_path / "zero.wav"
  zero_bytes.write_bytes(b"")
  with pytest.raises(audio.AudioError, match="zero.wav"):
    audio.load_audio(zero_bytes)
  no_samples = tmp_path / "nosamples.wav"
  soundfile.write(no_samples, np.zeros(0, np.float32), SR)
  with pytest.raises(audio.AudioError, match="empty audio"):
    audio.load_audio(no_samples)


def test_silent_file_raises_audio_error(tmp_path):
  path = tmp_path / "silent.wav"
  soundfile.write(path, np.zeros(SR * 12, np.float32), SR)
  with pytest.raises(audio.AudioError, match="silent"):
    audio.load_audio(path)


def test_too_short_track_raises_audio_error_in_cut_clips(tmp_path):
  with pytest.raises(audio.AudioError, match="short.wav: too short"):
    audio.cut_clips(_tone(4.0), SR, 5, 10.0, path=tmp_path / "short.wav")


def test_audio_duration_reads_header(tmp_path):
  path = tmp_path / "x.wav"
  soundfile.write(path, _tone(3.0), SR)
  assert audio.audio_duration(path) == pytest.approx(3.0)
