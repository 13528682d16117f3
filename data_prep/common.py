"""What every layer shares: the one-line user error, atomic file writes and locks, and typed YAML settings."""
from __future__ import annotations

import dataclasses
import fcntl
import math
import os
import tempfile
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml


class UserError(Exception):
    """A bad file, key, value or flag: the message names it and says what to do. Line breaks in it (e.g. from a
    library's message it quotes) become spaces, so that it stays one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


# --- atomic files -----------------------------------------------------------------------------------------------

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def temp_beside(path: str | Path) -> Path:
    """A new, empty, uniquely named file beside `path` (created exclusively: never an existing file or symlink)."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)   # the permissions a plain open() would give, not mkstemp's 0600
    os.close(fd)
    return Path(name)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Readers see the old file or the complete new one, never a partial write; a symlink at `path` is replaced,
    not followed."""
    tmp = temp_beside(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def lock_directory(directory: str | Path, name: str, what: str):
    """Hold an exclusive lock on `directory/name` for the life of the returned handle (or the process); a second
    holder is refused with a one-line error naming `what` holds it."""
    fh = open(Path(directory) / name, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise UserError(f"{directory} is in use by another {what}; wait for it to finish or choose another "
                        "directory") from None
    return fh


# --- typed settings: YAML (safe_load) into dataclasses, `key.sub=value` overrides ---------------------------------

@dataclass(frozen=True)
class Range:
    """An interval a numeric key must lie in; NaN and infinities are outside every range."""
    lo: float
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, value: float) -> bool:
        return (math.isfinite(value) and (self.lo < value if self.lo_open else self.lo <= value)
                and (value < self.hi if self.hi_open else value <= self.hi))

    def __str__(self) -> str:
        if self.hi == math.inf:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"{'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"


COUNT, NON_NEGATIVE, POSITIVE = Range(1), Range(0), Range(0, lo_open=True)
FRACTION = Range(0, 1, hi_open=True)


def check_ranges(cfg, ranges: dict[str, Range], source: str) -> None:
    """Every numeric value named in `ranges` ('section.key' or deeper; each item of a list or mapping) inside its
    range."""
    for key, allowed in ranges.items():
        value = _lookup(cfg, key)
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) \
            else [(None, value)]
        for sub, v in items:
            if v not in allowed:
                where = key if sub is None else f"{key}[{sub}]" if isinstance(sub, int) else f"{key}.{sub}"
                phrase = f"must be {allowed}" if allowed.hi == math.inf else f"must lie in {allowed}"
                raise UserError(f"{source}: '{where}' is {v!r}; it {phrase}")


def _lookup(cfg, key: str):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def check_choices(cfg, choices: dict[str, tuple[str, ...]], source: str) -> None:
    """Every key named in `choices` ('section.key' or deeper) holds one of its allowed values."""
    for key, allowed in choices.items():
        value = _lookup(cfg, key)
        if value not in allowed:
            raise UserError(f"{source}: '{key}' is {value!r}; choose one of {', '.join(allowed)}")


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value, tp, source: str, key: str):
    """Check `value` against the annotated type `tp`; ints (and YAML-1.1 strings like '1e9') pass as floats."""
    origin = typing.get_origin(tp)
    if origin is dict:
        key_tp, value_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise UserError(f"{source}: '{key}': expected a mapping, got {value!r}")
        return {_coerce(k, key_tp, source, f"{key} key"): _coerce(v, value_tp, source, f"{key}.{k}")
                for k, v in value.items()}
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise UserError(f"{source}: '{key}': expected a list of {_type_name(item_tp)}, got {value!r}")
        return [_coerce(v, item_tp, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is float and not isinstance(value, bool):
        if isinstance(value, int):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    if tp is int and isinstance(value, bool) or not isinstance(value, tp):
        raise UserError(f"{source}: '{key}': expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    return value


def build_settings(cls, data, source: str, path: str = ""):
    """The dataclass `cls` from a parsed mapping: unknown keys and wrongly typed values are one-line errors."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: '{path or 'top level'}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        key = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise UserError(f"{source}: unknown key '{key}'; known keys here: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in data.items():
        key = f"{path}.{name}" if path else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = build_settings(tp, value, source, key)
        else:
            kwargs[name] = _coerce(value, tp, source, key)
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], object]:
    """Split `key.sub=value` into its key path and a YAML-parsed value."""
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(f"override {text!r} is not of the form key.sub=value (e.g. train.epochs=5)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise UserError(f"override {text!r}: value is not valid YAML ({exc.problem})") from None
    return key.split("."), value


def read_settings(path: str | Path | None, overrides: list[str], sections: str) -> tuple[dict, str]:
    """A YAML file's mapping (None = empty) with `key.sub=value` overrides applied, and the name errors give it.
    `sections` lists the file's top-level sections for the error a non-mapping file gets."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise UserError(f"cannot read config {path}: {exc.strerror}; pass an existing YAML file") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise UserError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: top level must be a mapping of sections ({sections})")
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for part in keys[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override {text!r}: '{part}' is not a section")
        node[keys[-1]] = value
    return data, (source if not overrides else f"{source} + overrides")


def save_settings(settings, path: str | Path) -> None:
    """Write resolved settings (a dataclass) as YAML (atomically)."""
    write_text_atomic(path, yaml.safe_dump(dataclasses.asdict(settings), sort_keys=False))
