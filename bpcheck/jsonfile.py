"""Read a JSON file that someone else wrote (a report.json, a case file): every bad file is one SpecError line.

    data = read_validated("cases/0123456789ab.json", "case.schema.json", "give cases/<id>.json written by bpcheck")

In order, each step refusing with the file's name, what is wrong with it, and the fix:
- before reading: a missing path, a directory, a FIFO, socket or device (opened non-blocking and never read,
  so a FIFO with no writer cannot hang the run), a file over MAX_BYTES;
- reading: at most MAX_BYTES + 1 bytes, parsed once; strict UTF-8 (binary and UTF-16 content are named as such);
  nesting deeper than MAX_DEPTH (found before parsing); integers a float cannot hold (a 400-digit one) and the
  non-JSON NaN/Infinity are refused, since bpcheck writes non-finite numbers as the strings "inf", "-inf", "nan"
  (1e999 parses as inf, as Python's json reads it: a case refuses it as data, a metric shows it);
- validating: against a JSON Schema shipped in the package (fastjsonschema compiles it to Python once, ~20x
  faster than jsonschema on a large report), so a wrong type anywhere is named by its path in the file.
"""

from __future__ import annotations

import functools
import json
import os
import re
import stat
from importlib import resources
from typing import Any

import numpy as np

from .spec import SpecError

MAX_BYTES = 256 * 2**20  # a 10,000-case report.json is ~65 MB
MAX_DEPTH = 64           # a report nests ~10 deep
SCHEMA_BASE = "https://bpcheck.invalid/"  # the schemas' $id prefix: a $ref to another schema file resolves here
SCHEMA_FILES = {"report.schema.json": ("report", "schema.json"), "case.schema.json": ("case.schema.json",)}
_BOMS = {b"\xef\xbb\xbf": "UTF-8 with a byte-order mark", b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}


def _fail(path: str, problem: str, fix: str) -> SpecError:
    return SpecError(f"{path!r} {problem}: {fix}")


def short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_bytes(path: str | os.PathLike[str], fix: str) -> bytes:
    """The bytes of a regular file of at most MAX_BYTES; anything else is a SpecError naming path and fix."""
    name = os.fspath(path)
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting; fstat then refuses it.
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise _fail(name, f"cannot be read ({exc.strerror})", fix) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _fail(name, "is a directory", fix)
        if not stat.S_ISREG(info.st_mode):
            raise _fail(name, "is not a regular file (a FIFO, socket or device; it is not read)", fix)
        if info.st_size > MAX_BYTES:
            raise _fail(name, f"is {info.st_size} bytes, over the {MAX_BYTES // 2**20} MiB this bpcheck reads", fix)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_BYTES + 1)  # bounded: a file that grew since fstat is still refused
    except OSError as exc:
        raise _fail(name, f"cannot be read ({exc.strerror or exc})", fix) from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise _fail(name, f"is over the {MAX_BYTES // 2**20} MiB this bpcheck reads", fix)
    return data


class _Refused(Exception):
    """Raised by the parse hooks; read_json turns it into a SpecError."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > 308:  # more digits than float's largest; also under Python's int-parsing limit
        raise _Refused(f"has the integer {short(text)} ({len(text)} digits), too large for a float")
    return int(text)


def _parse_constant(text: str) -> float:
    raise _Refused(f"has the bare {text}, which is not JSON (bpcheck writes the string {text.lower()[:3]!r})")


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def _depth(raw: bytes) -> int:
    """How deep the JSON text nests, from its brackets outside strings; in C (re, bytes, numpy) and before parsing,
    so a file nested 10,000 deep costs no recursion and a 65 MB report no Python loop over its values."""
    brackets = np.frombuffer(_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS), dtype=np.uint8)
    if brackets.size == 0:
        return 0
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def read_json(path: str | os.PathLike[str], fix: str) -> Any:
    """The parsed content of a JSON file (read_bytes' checks, then strict UTF-8 and strict JSON), parsed once."""
    name = os.fspath(path)
    raw = read_bytes(name, fix)
    for bom, what in _BOMS.items():
        if raw.startswith(bom):
            raise _fail(name, f"is {what} text, not plain UTF-8", f"save it as UTF-8 without a BOM, or {fix}")
    nul = raw.find(b"\0")
    if nul >= 0:
        raise _fail(name, f"has a NUL byte at offset {nul} (binary or UTF-16 content, not JSON text)", fix)
    if _depth(raw) > MAX_DEPTH:
        raise _fail(name, f"nests JSON deeper than {MAX_DEPTH} levels", fix)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(name, f"is not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})", fix) from None
    try:
        data = json.loads(text, parse_int=_parse_int, parse_constant=_parse_constant)
    except _Refused as exc:
        raise _fail(name, str(exc), fix) from None
    except json.JSONDecodeError as exc:
        raise _fail(name, f"is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", fix) from None
    return data


def schema(name: str) -> dict[str, Any]:
    """A schema shipped in the package, by its file name in SCHEMA_FILES."""
    return json.loads(resources.files(__package__).joinpath(*SCHEMA_FILES[name]).read_text(encoding="utf-8"))


@functools.cache
def _validator(name: str):
    import fastjsonschema

    def local(uri: str) -> dict[str, Any]:  # a $ref to a sibling schema: from the package, never the network
        return schema(uri.removeprefix(SCHEMA_BASE).split("#", 1)[0])

    return fastjsonschema.compile(schema(name), handlers={"https": local})


def validate(data: Any, schema_name: str, path: str | os.PathLike[str], fix: str) -> Any:
    """data when it fits the schema; else a SpecError naming the first bad field, its value and the fix."""
    from fastjsonschema import JsonSchemaValueException

    try:
        _validator(schema_name)(data)
    except JsonSchemaValueException as exc:
        where = exc.name.removeprefix("data").lstrip(".")
        if exc.rule == "required" and isinstance(exc.value, dict):
            missing = ", ".join(k for k in exc.rule_definition if k not in exc.value)
            raise _fail(os.fspath(path), f"has {where} missing {missing}" if where else f"is missing {missing}", fix) from None
        where = where or "the top level"
        rule = exc.message.removeprefix(exc.name).strip()
        if exc.rule == "anyOf":  # name the alternatives instead of "must be valid by one of anyOf definition"
            rule = "must be " + " or ".join(_describe(alt) for alt in exc.rule_definition)
        raise _fail(os.fspath(path), f"has {where} = {short(exc.value)}, which {rule}", fix) from None
    return data


def _describe(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(map(repr, schema["enum"]))
    kind = schema.get("type", "valid")
    return "a " + " or ".join(kind) if isinstance(kind, list) else f"a {kind}"


def read_validated(path: str | os.PathLike[str], schema_name: str, fix: str) -> Any:
    """read_json, then validate against schema_name."""
    return validate(read_json(path, fix), schema_name, path, fix)
