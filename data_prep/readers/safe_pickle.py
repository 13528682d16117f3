"""Loading untrusted data pickles: an exact (module, name) allowlist, run in a memory-bounded child process.

The child unpickles with `RestrictedUnpickler`, checks the reference layout and hands back plain arrays in an
`.npz` (no pickle): whatever a hostile pickle tries, it can only name the callables below, and whatever it
allocates counts against the child's address-space limit, not the machine.
"""
from __future__ import annotations

import datetime
import os
import pickle
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# numpy reconstructs arrays, dtypes and scalars through these (numpy 1.x: numpy.core, 2.x: numpy._core).
_NUMPY = {(f"numpy.{core}.{mod}", name) for core in ("core", "_core")
          for mod, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))}
_NUMPY |= {("numpy", "ndarray"), ("numpy", "dtype")}

# pandas 1.5-3.x: frames, series, indexes, block managers and the extension arrays behind categorical, string
# (Python and Arrow storage), nullable integer/float/boolean and datetime/timedelta columns; pandas 3 pickles
# under the public names (pandas.X, pandas.arrays.X), older versions under pandas.core.*.
_PANDAS_PUBLIC = ("DataFrame", "Series", "Index", "RangeIndex", "DatetimeIndex", "CategoricalIndex", "Categorical",
                  "CategoricalDtype", "StringDtype", "BooleanDtype", "DatetimeTZDtype", "NA",
                  "Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype", "UInt8Dtype", "UInt16Dtype", "UInt32Dtype",
                  "UInt64Dtype", "Float32Dtype", "Float64Dtype")
_PANDAS_ARRAYS = ("StringArray", "ArrowStringArray", "IntegerArray", "FloatingArray", "BooleanArray",
                  "DatetimeArray", "TimedeltaArray")
_PANDAS = {("pandas", n) for n in _PANDAS_PUBLIC} | {("pandas.arrays", n) for n in _PANDAS_ARRAYS} | {
    ("pandas.core.frame", "DataFrame"), ("pandas.core.series", "Series"),
    ("pandas.core.internals.managers", "BlockManager"), ("pandas.core.internals.managers", "SingleBlockManager"),
    ("pandas.core.internals.blocks", "new_block"), ("pandas._libs.internals", "_unpickle_block"),
    ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
    ("pandas.core.indexes.base", "Index"), ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.indexes.range", "RangeIndex"), ("pandas.core.indexes.category", "CategoricalIndex"),
    ("pandas.core.indexes.datetimes", "DatetimeIndex"), ("pandas.core.indexes.datetimes", "_new_DatetimeIndex"),
    ("pandas.core.indexes.numeric", "Int64Index"), ("pandas.core.indexes.numeric", "UInt64Index"),
    ("pandas.core.indexes.numeric", "Float64Index"),
    ("pandas.core.arrays.categorical", "Categorical"), ("pandas.core.dtypes.dtypes", "CategoricalDtype"),
    ("pandas.core.dtypes.dtypes", "DatetimeTZDtype"),
    ("pandas.core.arrays.string_", "StringArray"), ("pandas.core.arrays.string_", "StringDtype"),
    ("pandas.core.arrays.string_arrow", "ArrowStringArray"),
    ("pandas.core.arrays.boolean", "BooleanArray"), ("pandas.core.arrays.boolean", "BooleanDtype"),
    ("pandas.core.arrays.integer", "IntegerArray"), ("pandas.core.arrays.floating", "FloatingArray"),
    ("pandas.core.arrays.datetimes", "DatetimeArray"), ("pandas.core.arrays.timedeltas", "TimedeltaArray"),
    ("pandas._libs.missing", "NA"), ("pandas._libs.tslibs.nattype", "__nat_unpickle"),
    ("pandas._libs.tslibs.nattype", "_nat_unpickle"), ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"),
    ("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle"),
}
_PANDAS |= {("pandas.core.arrays.integer", f"{k}Dtype") for k in ("Int8", "Int16", "Int32", "Int64", "UInt8",
                                                                  "UInt16", "UInt32", "UInt64")}
_PANDAS |= {("pandas.core.arrays.floating", f"{k}Dtype") for k in ("Float32", "Float64")}

# Arrow-backed string columns (pandas 3's default string storage when pyarrow is installed).
_ARROW = {("pyarrow.lib", "_restore_array"), ("pyarrow.lib", "py_buffer"), ("pyarrow.lib", "type_for_alias")}

# Builtin containers and the standard library's date/time values (UTC offsets only: no time-zone database).
_STDLIB = {("builtins", n) for n in ("slice", "set", "frozenset", "bytearray", "complex", "object")} | {
    ("copyreg", "_reconstructor"), ("datetime", "date"), ("datetime", "datetime"), ("datetime", "time"),
    ("datetime", "timedelta"), ("datetime", "timezone"), ("pytz", "_UTC"),
}

ALLOWED = frozenset(_NUMPY | _PANDAS | _ARROW | _STDLIB)


def _latin1_encode(text, encoding="latin1"):
    """`_codecs.encode` as protocol-2 pickles use it for bytes, and only that (no other codec is looked up)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise Refused(f"refused to load '_codecs.encode' with encoding {encoding!r}")
    return text.encode("latin1")


def _utc():
    """pytz's UTC as pandas < 2 pickled it (`pytz._UTC()`), read as the standard library's UTC: the same instants,
    and pandas 3 does not bring pytz."""
    return datetime.timezone.utc


def _string_dtype(storage=None, na_value=None):
    """pandas 3's StringDtype(storage, na_value), built by the installed pandas (pandas 2 has no na_value;
    the values convert to the same strings either way)."""
    import pandas as pd
    try:
        return pd.StringDtype(storage, na_value)
    except TypeError:
        return pd.StringDtype(storage)


def _read_pandas3_arrays() -> None:
    """pandas 3 pickles its numpy-backed arrays (string, categorical, datetime) with a (dtype, values) state,
    which pandas 2 rejects: let the installed pandas 2 take it as (dtype, values, {}). Only in the loader child."""
    import pandas as pd
    if pd.__version__ >= "3":
        return
    from pandas._libs.arrays import NDArrayBacked
    from pandas.core.arrays._mixins import NDArrayBackedExtensionArray

    def setstate(self, state):
        if isinstance(state, tuple) and len(state) == 2:
            state = (*state, {})
        NDArrayBacked.__setstate__(self, state)

    NDArrayBackedExtensionArray.__setstate__ = setstate


class Refused(pickle.UnpicklingError):
    """The pickle names something outside the allowlist."""


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves exactly the (module, name) pairs in ALLOWED; anything else is refused before it is imported."""

    def find_class(self, module: str, name: str):
        module = "builtins" if module == "__builtin__" else module
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) not in ALLOWED:
            raise Refused(f"refused to load '{module}.{name}' (not plain numpy/pandas data)")
        if (module, name) == ("pytz", "_UTC"):
            return _utc
        if (module, name) == ("pandas", "StringDtype"):   # pandas 3 pickles it as StringDtype(storage, na_value)
            return _string_dtype
        if module.startswith("numpy._core.") and np.__version__ < "2":
            module = "numpy.core." + module[len("numpy._core."):]   # numpy 2 names, read by numpy 1.x
        return super().find_class(module, name)

    def persistent_load(self, pid):
        raise Refused("refused a persistent reference (not plain numpy/pandas data)")


# ---------------------------------------------------------------- the memory-bounded child
MEMORY_BASE = 1 << 30      # bytes a pickle may allocate beyond the child's imports, plus MEMORY_PER_BYTE per file byte
MEMORY_PER_BYTE = 8


def _vm_size() -> int:
    with open("/proc/self/status") as fh:
        kib = next(int(line.split()[1]) for line in fh if line.startswith("VmSize:"))
    return kib * 1024


def _plain_column(col) -> np.ndarray:
    """A label column as float64 (numbers, booleans, nullable), datetime64[ns] (UTC) or unicode strings."""
    import pandas as pd
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return col.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(col):
        return col.to_numpy("datetime64[ns]")
    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
        return pd.to_numeric(col.astype("object"), errors="coerce").to_numpy(np.float64, na_value=np.nan)
    return np.array(["" if pd.isna(v) else str(v) for v in col], dtype=str)


def _child(path: str, out: str) -> None:
    """Unpickle `path` under the allowlist and the memory bound; write samples + label columns to `out` (.npz)."""
    import pandas as pd
    limit = _vm_size() + MEMORY_BASE + MEMORY_PER_BYTE * os.path.getsize(path)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    _read_pandas3_arrays()
    try:
        with open(path, "rb") as fh:
            obj = RestrictedUnpickler(fh).load()
        if not isinstance(obj, dict) or "labels" not in obj or "samples" not in obj:
            raise ValueError("expected a dict with 'labels' (DataFrame) and 'samples' (list of arrays)")
        labels = pd.DataFrame(obj["labels"]).reset_index(drop=True)
        samples = list(obj.pop("samples"))
        del obj
        if len(samples) != len(labels):
            raise ValueError(f"{len(samples)} samples but {len(labels)} label rows")
        lengths = np.array([np.size(s) for s in samples], np.int64)
        # float32 when every sample is (no precision to lose), else float64; each sample is released once copied,
        # so the file's arrays and the flat copy are not both held whole
        single = all(isinstance(s, np.ndarray) and s.dtype == np.float32 for s in samples)
        flat, at = np.empty(int(lengths.sum()), np.float32 if single else np.float64), 0
        for i, n in enumerate(lengths):
            flat[at:at + n] = np.asarray(samples[i], dtype=flat.dtype).ravel()
            samples[i], at = None, at + n
        arrays = {"lengths": lengths, "samples": flat,
                  "columns": np.array([str(c) for c in labels.columns], dtype=str)}
        arrays |= {f"col{i}": _plain_column(labels[c]) for i, c in enumerate(labels.columns)}
        with open(out, "wb") as fh:
            np.savez(fh, **arrays)
    except MemoryError:
        sys.exit(f"needs more than the {limit >> 20} MiB a pickle of this size may use while loading")
    except Refused as exc:
        sys.exit(f"{exc}; this file is not a plain data pickle and was not loaded")
    except Exception as exc:   # anything else a malformed pickle raises while loading or converting
        sys.exit(f"unreadable pickle ({type(exc).__name__}: {exc})".replace("\n", " "))


def load_reference_pickle(path: Path, workdir: Path) -> tuple[list[np.ndarray], pd.DataFrame]:
    """The reference study's {"labels": DataFrame, "samples": [1-D arrays]} from an untrusted pickle.

    Returns the samples (float32 when the file's are, else float64) and the label table (numbers as float64,
    datetimes as datetime64, the rest as strings). Raises ValueError with a one-line reason when the file is
    refused or unreadable."""
    import pandas as pd
    workdir.mkdir(parents=True, exist_ok=True)
    fd, out = tempfile.mkstemp(prefix=".pickle-", suffix=".npz", dir=workdir)
    os.close(fd)
    try:
        proc = subprocess.run([sys.executable, "-I", "-m", "data_prep.readers.safe_pickle", str(path), out],
                              capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "")})
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            raise ValueError(lines[-1] if lines else f"the loader exited with code {proc.returncode}")
        with np.load(out, allow_pickle=False) as npz:
            flat, lengths = npz["samples"], npz["lengths"]
            labels = pd.DataFrame({str(name): npz[f"col{i}"] for i, name in enumerate(npz["columns"])})
    finally:
        os.unlink(out)
    return np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else [], labels


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
