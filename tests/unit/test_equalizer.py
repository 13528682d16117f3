"""The decoder's spectral equalizer on signals whose smoothing is known."""
import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from cvae.generation.equalizer import GAIN_LIMITS, _power, equalize, equalizer_fir, equalizer_problem, measure_equalizer

FS = 125.0


@pytest.fixture(scope="module")
def pulses():
    """Pulse-like signals (8 harmonics falling 0.6x each, rate 60-90 bpm) and a copy smoothed by a known low-pass."""
    rng = np.random.default_rng(0)
    t = np.arange(1024) / FS
    f0, phase = rng.uniform(1.0, 1.5, (400, 1, 1)), rng.uniform(0, 2 * np.pi, (400, 8, 1))
    k = np.arange(1, 9)[None, :, None]
    x = (0.6 ** k * np.sin(2 * np.pi * k * f0 * t + phase)).sum(axis=1) + 1e-4 * rng.standard_normal((400, 1024))
    smoothed = sosfiltfilt(butter(2, 8.0, fs=FS, output="sos"), x, axis=1)   # |H| = 1 / (1 + (f/8)^4) both ways
    return x, smoothed


def test_gain_undoes_a_known_smoothing_inside_the_signal_band_only(pulses):
    x, smoothed = pulses
    eq = measure_equalizer(x, smoothed, FS)
    hz, gain = np.array(eq["hz"]), np.array(eq["gain"])
    assert hz[0] == 0 and hz[-1] == FS / 2 and equalizer_problem(eq, FS) is None
    for h in (2.0, 4.0, 6.0):
        assert gain[hz == h][0] == pytest.approx(1 + (h / 8) ** 4, rel=0.05), h
    assert gain[hz == 30.0][0] == 1.0   # far below the data's peak: noise, left alone
    assert gain.max() <= GAIN_LIMITS[1]
    f = np.fft.rfftfreq(1024, 1 / FS)
    band = (f > 0.8) & (f < 7.0)
    before = 10 * np.log10(_power(smoothed)[band] / _power(x)[band])
    after = 10 * np.log10(_power(equalize(equalizer_fir(eq, FS), smoothed))[band] / _power(x)[band])
    assert before.min() < -3 and np.abs(after).max() < 0.5, (before.min(), np.abs(after).max())


def test_matching_reconstructions_leave_the_signals_unchanged(pulses):
    x, _ = pulses
    eq = measure_equalizer(x, x, FS)
    assert set(eq["gain"]) == {1.0}
    assert np.abs(equalize(equalizer_fir(eq, FS), x[:20]) - x[:20]).max() < 0.02


@pytest.mark.parametrize("change", [
    {"gain": "nan"}, {"gain": 100.0}, {"hz_end": 40.0}, {"extra": 1}, {"missing": "gain"}])
def test_a_damaged_equalizer_is_named(pulses, change):
    x, smoothed = pulses
    eq = measure_equalizer(x, smoothed, FS)
    if "gain" in change:
        eq["gain"][3] = float(change["gain"])
    if "hz_end" in change:
        eq["hz"][-1] = change["hz_end"]
    if "extra" in change:
        eq["extra"] = 1
    if "missing" in change:
        del eq[change["missing"]]
    assert equalizer_problem(eq, FS).startswith("equalizer:")
