"""Conditioning of a whole raw recording before it is cut into windows: ADC wrap-around, gaps, DC and trend, a
zero-phase band-pass, anti-aliased resampling with the edges dropped, polarity; plus the raw-scale flags (rails, flat
stretches) that the per-window quality verdict needs, on the conditioned signal's time axis."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import signal as sps
from scipy.stats import skew

from data_prep.settings import RANGES


@dataclass
class Segment:
    """One gap-free piece of a recording, conditioned, at the target rate, with the raw-scale flags of its samples."""
    x: np.ndarray            # conditioned signal, float64
    raw_index: np.ndarray    # for each sample of x, the raw sample (of this piece) it comes from
    flags: "RawFlags"        # per raw sample of the piece
    start_s: float           # where the segment starts in the recording, seconds


@dataclass
class RawFlags:
    """Per raw sample, cumulative, so that any window's counts are two lookups."""
    rail: np.ndarray         # cumulative count of samples on a rail plateau
    jump: np.ndarray         # cumulative count of rail-to-rail jumps
    run: np.ndarray          # length (s) of the run of identical raw samples each sample belongs to

    def window(self, a: int, b: int) -> tuple[float, bool, float]:
        """(share of samples on a rail, any rail-to-rail jump, longest flat run in s) over raw samples a..b-1."""
        return ((self.rail[b] - self.rail[a]) / max(b - a, 1), bool(self.jump[b] - self.jump[a]),
                float(self.run[a:b].max(initial=0.0)))


@dataclass
class Conditioned:
    segments: list[Segment]
    inverted: bool
    gaps_interpolated: int
    splits: int
    unwrapped: int = 0       # ADC wrap-arounds undone


def adc_span(x: np.ndarray) -> float | None:
    """The span of the ADC behind quantized samples: 2**bits of their quantum (the smallest step between distinct
    values), with the fewest bits (at least 8) that hold their range; None when the finite samples are not on one
    uniform grid (then nothing is unwrapped)."""
    values = np.unique(x[np.isfinite(x)])
    if len(values) < 3:
        return None
    quantum = float(np.min(np.diff(values)))
    counts = (values - values[0]) / quantum
    if not np.allclose(counts, np.round(counts), rtol=0, atol=1e-3):
        return None
    return float(2 ** max(8, int(np.ceil(np.log2(counts[-1] + 1)))) * quantum)


def unwrap(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Undo ADC wrap-around (the pulse climbs past the top of the range and reappears at the bottom): every step
    between consecutive finite samples above 3/4 of the ADC span is taken as a wrap and shifted by whole spans.
    -> (signal, wraps undone). Saturation (a plateau at a rail) has no such step and is left to the quality check."""
    span = adc_span(x)
    finite = np.isfinite(x)
    if span is None:
        return x, 0
    values = x[finite]
    wraps = int(np.count_nonzero(np.abs(np.diff(values)) > 0.75 * span))
    if not wraps:
        return x, 0
    x = x.copy()
    x[finite] = np.unwrap(values, discont=0.75 * span, period=span)
    return x, wraps


def _design(kind: str, order: int, stopband_db: float, low_hz: float | None, high_hz: float, fs: float):
    """Second-order sections of a band-pass (a low-pass when `low_hz` is None) at rate `fs`; the upper edge stays
    below Nyquist."""
    high = min(high_hz, 0.45 * fs)
    edges, btype = (high, "lowpass") if low_hz is None else ([low_hz, high], "bandpass")
    if kind == "cheby2":
        return sps.cheby2(order, stopband_db, edges, btype=btype, fs=fs, output="sos")
    return sps.butter(order, edges, btype=btype, fs=fs, output="sos")


def filter_sos(cfg, fs: float):
    """The configured band-pass at rate `fs`; None for no filter."""
    if cfg.filter == "none":
        return None
    return _design(cfg.filter, cfg.order, cfg.stopband_db, cfg.low_hz, cfg.high_hz, fs)


def band_limit(cfg) -> dict | None:
    """The band-pass's upper side as parameters: recorded in the manifest, carried into the exported model, where
    generation passes its signals through the same low-pass (None: the recordings were not filtered)."""
    if cfg.filter == "none":
        return None
    return {"filter": cfg.filter, "order": cfg.order, "stopband_db": cfg.stopband_db, "high_hz": cfg.high_hz}


def band_limit_problem(limit) -> str | None:
    """What is wrong with a band limit read back from a file (None: usable; the ranges are the config's)."""
    if limit is None:
        return None
    if not isinstance(limit, dict) or set(limit) != {"filter", "order", "stopband_db", "high_hz"}:
        return "band_limit must be a mapping of exactly filter, order, stopband_db, high_hz"
    numbers = {k: limit[k] for k in ("order", "stopband_db", "high_hz")}
    ok = (limit["filter"] in ("cheby2", "butter") and type(limit["order"]) is int
          and all(type(v) in (int, float) and v in RANGES[f"condition.{k}"] for k, v in numbers.items()))
    return None if ok else f"band_limit {limit} is out of range"


def lowpass_sos(limit: dict, fs: float):
    """The low-pass side of the band-pass that `limit` describes, at rate `fs`."""
    return _design(limit["filter"], limit["order"], limit["stopband_db"], None, limit["high_hz"], fs)


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling (scipy's Kaiser-window anti-aliasing FIR) between sampling rates."""
    if abs(fs_in - fs_out) < 1e-9:
        return x
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    return sps.resample_poly(x, ratio.numerator, ratio.denominator)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in a 1-D mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def _split_gaps(x: np.ndarray, fs: float, max_gap_s: float) -> tuple[list[tuple[int, np.ndarray]], int, int]:
    """Interpolate NaN runs up to max_gap_s, split at longer ones; -> [(start index, piece)], interpolated, splits."""
    missing = ~np.isfinite(x)
    pieces, start, interpolated, splits = [], 0, 0, 0
    x = x.copy()
    for a, b in _runs(missing):
        if (b - a) / fs <= max_gap_s and a > 0 and b < len(x):
            x[a:b] = np.interp(np.arange(a, b), [a - 1, b], [x[a - 1], x[b]])
            interpolated += 1
        else:
            if a > start:
                pieces.append((start, x[start:a]))
            start = b
            splits += 1
    if start < len(x):
        pieces.append((start, x[start:]))
    return pieces, interpolated, splits


def _raw_flags(raw: np.ndarray, fs: float, lo: float, hi: float, quality) -> RawFlags:
    """Rail plateaus (3+ equal samples within the rail band of the recording's range), rail-to-rail jumps (a step
    above quality.max_jump of the range: saturation or wrap-around) and flat-run lengths of one raw piece."""
    span = max(hi - lo, 1e-12)
    change = np.flatnonzero(np.diff(raw) != 0) + 1
    bounds = np.concatenate([[0], change, [len(raw)]])
    run = np.repeat(np.diff(bounds), np.diff(bounds))
    band = (raw <= lo + quality.rail_band * span) | (raw >= hi - quality.rail_band * span)
    rail = band & (run >= 3)
    jump = np.zeros(len(raw), bool)
    jump[1:] = np.abs(np.diff(raw)) > quality.max_jump * span
    return RawFlags(np.concatenate([[0], np.cumsum(rail)]), np.concatenate([[0], np.cumsum(jump)]), run / fs)


def condition(raw: np.ndarray, fs_in: float, fs_out: float, cfg, quality) -> Conditioned:
    """Condition one whole recording (`cfg`: ConditionConfig, `quality`: QualityConfig) -> its segments."""
    raw = np.asarray(raw, dtype=np.float64)
    raw, unwrapped = unwrap(raw) if cfg.unwrap else (raw, 0)
    finite = raw[np.isfinite(raw)]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 0.0)
    pieces, interpolated, splits = _split_gaps(raw, fs_in, cfg.max_gap_s)
    sos = filter_sos(cfg, fs_in)
    edge = int(round(cfg.edge_s * fs_out))
    segments = []
    for start, piece in pieces:
        if len(piece) < max(3 * (cfg.order + 1) * 2, int(2 * cfg.edge_s * fs_in) + 1):
            continue   # too short to filter and still keep something after the edges are dropped
        flags = _raw_flags(piece, fs_in, lo, hi, quality)
        x = sps.detrend(piece - np.median(piece), type="linear")
        if sos is not None:
            x = sps.sosfiltfilt(sos, x)
        x = resample(x, fs_in, fs_out)
        src = np.minimum((np.arange(len(x)) * fs_in / fs_out).astype(np.int64), len(piece) - 1)
        keep = slice(edge, len(x) - edge)
        segments.append(Segment(x[keep], src[keep], flags, start / fs_in + edge / fs_out))
    inverted = cfg.polarity == "invert" or (cfg.polarity == "auto" and _points_down(segments, fs_out))
    if inverted:
        for s in segments:
            s.x = -s.x
    return Conditioned(segments, inverted, interpolated, splits, unwrapped)


def _points_down(segments: list[Segment], fs: float, chunk_s: float = 10.0) -> bool:
    """True when the steep (systolic) edge of the beats points down: the first difference is negatively skewed in
    most 10 s stretches without rail plateaus or jumps (a median, so that a few artifacts do not decide)."""
    n = int(chunk_s * fs)
    clean, every = [], []
    for s in segments:
        for a in range(0, max(len(s.x) - n, 0) + 1, n):
            piece = s.x[a:a + n]
            if len(piece) < 3:
                continue
            value = skew(np.diff(piece))
            every.append(value)
            rail, jump, _ = s.flags.window(int(s.raw_index[a]), int(s.raw_index[a + len(piece) - 1]) + 1)
            if not jump and rail == 0:
                clean.append(value)
    skews = clean or every
    return bool(skews) and float(np.median(skews)) < 0


def describe(cfg, fs_out: float) -> dict:
    """The conditioning steps and their parameters, for the manifest."""
    return {
        "unwrap": "steps above 3/4 of the ADC span (2**bits quantum steps, inferred from quantized samples) undone "
                  "by whole spans" if cfg.unwrap else "off",
        "gaps": f"NaN runs up to {cfg.max_gap_s:g} s interpolated linearly; longer ones split the recording",
        "dc_trend": "median subtracted, linear trend removed",
        "band_pass": "none" if cfg.filter == "none" else
        f"{cfg.filter} order {cfg.order}" + (f", {cfg.stopband_db:g} dB stopband" if cfg.filter == "cheby2" else "")
        + f", {cfg.low_hz:g}-{cfg.high_hz:g} Hz, zero-phase (forward-backward, scipy sosfiltfilt)",
        "resample": f"polyphase to {fs_out:g} Hz (scipy resample_poly, Kaiser anti-aliasing FIR)",
        "edges": f"{cfg.edge_s:g} s dropped at both ends of every segment",
        "band_limit": band_limit(cfg),
        "polarity": {"keep": "kept", "invert": "inverted",
                     "auto": "inverted when the first difference is negatively skewed (the steep edge of the "
                             "beat points down) in most 10 s stretches free of rail plateaus and jumps"}[cfg.polarity],
    }
