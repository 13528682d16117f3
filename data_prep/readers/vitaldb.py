"""VitalDB case files (`NNNN.vital`): the PLETH track, read locally with the `vitaldb` package. Labels come from
the clinical-information table (`caseid`, `age`, `sex`, `height`, `weight`, `bmi`) given as the label table."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data_prep.common import UserError
from data_prep.readers.recordings import Recording, record_name
from data_prep.settings import DataConfig


def read_vital(path: Path, data: DataConfig) -> Recording:
    """The case's PLETH track (or data.raw_channel) at its own rate; the record name is the case id."""
    import vitaldb
    try:
        names = vitaldb.VitalFile(str(path), header_only=True).get_track_names()
    except Exception as exc:   # the package raises many types on damaged files
        raise UserError(f"{path}: unreadable .vital file ({type(exc).__name__}: {str(exc)[:200]})") from None
    wanted = data.raw_channel.upper() if data.raw_channel else "PLETH"
    track = next((t for t in names if t.upper().split("/")[-1] == wanted), None)
    if track is None:
        raise UserError(f"{path}: no {wanted} track (has {', '.join(names) or 'none'}); set data.raw_channel")
    vf = vitaldb.VitalFile(str(path), [track])
    fs = float(vf.find_track(track).srate)
    if not fs > 0:
        raise UserError(f"{path}: track {track} is not a waveform (no sampling rate)")
    x = vf.to_numpy([track], 1.0 / fs)[:, 0].astype(np.float64)
    return Recording(record_name(path), x, fs)
