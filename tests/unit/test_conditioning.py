"""Recording conditioning and the window verdicts, on signals whose answer is known by construction."""
import numpy as np
import pytest

from conftest import REPO
from cvae.beats import clean_beats
from cvae.config import load_config
from data_prep.conditioning import condition
from data_prep.quality import beat_reason, raw_reason
from data_prep.readers.recordings import Recording, record_windows

CFG = load_config(None)


def pulse(seconds: float, fs: float, hr: float = 66.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * fs)) / fs
    phase = (t * hr / 60.0) % 1.0
    beat = np.exp(-((phase - 0.15) / 0.05) ** 2) + 0.3 * np.exp(-((phase - 0.45) / 0.15) ** 2)
    return beat + 0.005 * np.random.default_rng(seed).standard_normal(len(t))


def test_offset_and_wander_are_removed_and_the_rate_changes():
    fs = 200.0
    t = np.arange(int(60 * fs)) / fs
    raw = -315_000 + 40 * pulse(60, fs) + 30 * np.sin(2 * np.pi * 0.05 * t)    # offset + slow wander
    c = condition(raw, fs, 125.0, CFG.condition, CFG.quality)
    (seg,) = c.segments
    assert len(seg.x) == round((60 - 2 * CFG.condition.edge_s) * 125)
    assert abs(seg.x.mean()) < 0.1 * seg.x.std()              # the -315,000 offset is gone
    lows = [seg.x[a:a + 1250].mean() for a in range(0, len(seg.x) - 1250, 1250)]
    assert np.ptp(lows) < 0.2 * np.ptp(seg.x)            # the 0.05 Hz wander is gone
    assert clean_beats(seg.x[:1024], 125.0)[0] > 0.9


def test_short_gaps_are_filled_and_long_ones_split():
    fs = 100.0
    raw = pulse(60, fs)
    raw[1000:1010] = np.nan                               # 0.1 s: interpolated
    raw[3000:3100] = np.nan                               # 1 s: splits the recording
    c = condition(raw, fs, 125.0, CFG.condition, CFG.quality)
    assert (c.gaps_interpolated, c.splits, len(c.segments)) == (1, 1, 2)
    assert c.segments[1].start_s > 31.0 and all(np.isfinite(s.x).all() for s in c.segments)


def test_polarity_auto_turns_an_inverted_recording_upright():
    fs = 125.0
    upright = condition(pulse(40, fs), fs, fs, CFG.condition, CFG.quality)
    flipped = condition(-pulse(40, fs), fs, fs, CFG.condition, CFG.quality)
    assert not upright.inverted and flipped.inverted
    assert np.allclose(upright.segments[0].x, flipped.segments[0].x)


def test_rails_jumps_and_flat_stretches_are_named():
    fs = 125.0
    x = 1000 + 500 * pulse(60, fs)
    clipped = x.copy()
    clipped[2000:2600] = np.minimum(clipped[2000:2600], np.percentile(x, 60))   # saturated tops
    clipped[2000:2600][clipped[2000:2600] >= np.percentile(x, 60)] = 4095
    wrapped = x.copy()
    wrapped[5000:5040] += 60_000                           # a wrap-around excursion
    flat = x.copy()
    flat[6000:6200] = flat[6000]
    for raw, (a, b), reason in ((clipped, (2000, 2600), "clipped"), (wrapped, (5000, 5040), "clipped"),
                                (flat, (6000, 6200), "flat")):
        windows, reasons, _ = record_windows(Recording("r", raw, fs), fs, CFG)
        starts = np.arange(len(windows)) * 1024 + int(CFG.condition.edge_s * fs)
        hit = (starts < b) & (a < starts + 1024)
        assert set(reasons[hit]) == {reason} and set(reasons[~hit]) == {""}, (reason, list(reasons))
    assert raw_reason(0.0, False, 0.0, CFG.quality) == ""


def test_beat_verdicts():
    fs = 125.0
    good = pulse(8.2, fs)[:1024]
    assert beat_reason(good, fs, CFG.quality) == ""
    assert beat_reason(np.random.default_rng(0).standard_normal(1024), fs, CFG.quality) != ""
    assert beat_reason(pulse(8.2, fs, hr=190)[:1024], fs, CFG.quality) == "implausible_hr"   # above 180 bpm


def test_a_window_the_quality_library_fails_on_is_quarantined_not_fatal():
    """A 20 Hz pulse with spikes, resampled to 125 Hz (3 beats found): neurokit2's template matching raises
    "cannot convert float NaN to integer" on it; the window gets its own reason and the rest are judged."""
    import neurokit2 as nk

    from data_prep.quality import beat_reasons
    failing = np.load(REPO / "tests" / "data" / "neurokit2_quality_failure.npy")
    peaks = np.asarray(nk.ppg_findpeaks(failing, sampling_rate=125)["PPG_Peaks"])
    with pytest.raises(ValueError, match="NaN"):
        nk.ppg_quality(failing, peaks=peaks, sampling_rate=125, method="templatematch")
    good = pulse(8.2, 125.0)[:1024]
    assert list(beat_reasons(np.stack([good, failing, good]), 125.0, CFG.quality)) == \
        ["", "quality_check_failed", ""]


@pytest.mark.parametrize("bits", [12, 16])
def test_adc_wrap_around_is_undone_and_saturation_is_still_clipped(bits):
    """A pulse in ADC counts that climbs past the top of a `bits`-bit range and reappears at the bottom, every beat
    (as a bedside monitor's PLETH does): one span added back at each wrap gives the pulse, so conditioning gives the
    same signal as without the wrap and no window is clipped. Saturation at the same level stays `clipped`."""
    from data_prep.conditioning import unwrap
    fs, span = 250.0, 2 ** bits
    counts = np.round(0.55 * span + 0.6 * span * pulse(60, fs))      # peaks above span - 1
    wrapped = counts % span
    assert (counts >= span).any() and np.abs(np.diff(wrapped)).max() > 0.75 * span
    fixed, wraps = unwrap(wrapped)
    assert wraps == np.count_nonzero(np.diff(counts // span)) > 100    # every crossing of the top, up and down
    assert np.allclose(fixed - fixed[0], counts - counts[0], atol=1e-9)
    clean = condition(counts, fs, 125.0, CFG.condition, CFG.quality).segments[0].x
    repaired = condition(wrapped, fs, 125.0, CFG.condition, CFG.quality)
    assert repaired.unwrapped == wraps and np.allclose(repaired.segments[0].x, clean, atol=1e-6 * np.ptp(clean))
    windows, reasons, info = record_windows(Recording("r", wrapped, fs), fs, CFG)
    assert set(reasons) == {""} and info["unwrapped"] == wraps
    assert clean_beats(windows[0], 125.0)[0] > 0.9
    saturated = np.minimum(counts, span - 1)
    assert unwrap(saturated)[1] == 0
    assert "clipped" in set(record_windows(Recording("s", saturated, fs), fs, CFG)[1])
    off = load_config(None, ["condition.unwrap=false"])
    assert set(record_windows(Recording("r", wrapped, fs), fs, off)[1]) == {"clipped"}


def test_a_float_recording_is_never_unwrapped():
    from data_prep.conditioning import adc_span, unwrap
    x = 1000 + 500 * pulse(60, 125.0)                  # not on a grid of ADC steps
    x[5000:5040] += 60_000
    assert adc_span(x) is None and unwrap(x)[1] == 0
