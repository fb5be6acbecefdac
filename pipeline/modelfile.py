"""Model files handed over to ``nightscore model register``: what a file is, read without ever unpickling it.

Accepted: XGBoost's own formats, UBJSON (``.ubj``) and JSON (``.json``), whether saved from a ``Booster`` or
from the scikit-learn wrapper (``XGBClassifier``/``XGBRegressor``, the same format with a ``scikit_learn``
attribute), and an MLflow model folder of the xgboost flavour (its ``MLmodel`` names the file). Refused, by
content or name: pickle and joblib files (loading one runs any code it holds), compressed files, XGBoost's
old binary format, and anything else, each with the line that saves the model properly.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ModelError

SAVE = 'save it where it was trained with model.save_model("model.ubj") (the same for a Booster, an XGBClassifier or an XGBRegressor) and register model.ubj'
PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib", ".sav"}
# first bytes of the files refused by content (joblib compresses with zlib, gzip, bz2, lzma/xz or lz4)
COMPRESSED = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bz2",
    b"\xfd7zXZ\x00": "xz",
    b"\x5d\x00\x00": "lzma",
    b"\x04\x22\x4d\x18": "lz4",
    b"ZF": "joblib zlib",
}
UBJ_MARKERS = b"LliUI$#}"  # what follows UBJSON's opening '{': a key's length type, a typed container, or the end


@dataclass(frozen=True)
class ModelFile:
    """A handed-over model: the path given, the file read, its bytes and what they are."""

    given: Path  # the file or the MLflow folder named on the command line
    path: Path  # the model file itself
    data: bytes
    format: str  # ubj | json | mlflow (see origin_format for the scikit-learn wrapper's files)
    mlflow_run_id: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def read_model_file(path: Path) -> ModelFile:
    """The model at ``path`` (a file, an MLflow folder or its ``MLmodel``), or a :class:`ModelError` saying why not."""
    path = Path(path)
    if path.name == "MLmodel" and path.is_file():
        path = path.parent
    if path.is_dir():
        return _read_mlflow(path)
    if not path.is_file():
        raise ModelError(
            f"no model file at {path}", where=str(path), fix="give the path of a .ubj or .json file, or of an MLflow model folder"
        )
    data = path.read_bytes()
    return ModelFile(path, path, data, xgboost_format(path, data))


def xgboost_format(path: Path, data: bytes) -> str:
    """``ubj`` or ``json`` by the bytes; any other file is refused with what it is and how to save the model."""
    refused = refusal(path, data)
    if refused:
        raise ModelError(refused, where=str(path), fix=SAVE)
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] == b"{" and head[1:].lstrip()[:1] in (b'"', b"}"):
        return "json"
    if head[:1] == b"{" and head[1:2] and head[1:2] in UBJ_MARKERS:
        return "ubj"
    if data[:4] == b"binf" or path.suffix.lower() in (".bin", ".model", ".xgb", ".deprecated"):
        raise ModelError(
            f"{path.name} looks like XGBoost's old binary format, which XGBoost 3.1 and later no longer read",
            where=str(path),
            fix='load it with the XGBoost version that wrote it (before 3.1) and save it again with model.save_model("model.ubj")',
        )
    empty = " (it is empty)" if not data else ""
    raise ModelError(f"{path.name} is not an XGBoost model file (UBJSON or JSON){empty}", where=str(path), fix=SAVE)


def refusal(path: Path, data: bytes) -> str | None:
    """Why a pickle, joblib or compressed file is refused (``None``: it is none of them). Never unpickles it."""
    never = "nightscore never loads one (unpickling runs whatever code the file holds)"
    if data[:1] == b"\x80" or {s.lower() for s in path.suffixes} & PICKLE_SUFFIXES:
        return f"{path.name} is a pickle or joblib file: {never}"
    for magic, name in COMPRESSED.items():
        if data.startswith(magic):
            return f"{path.name} is a {name}-compressed file (as joblib writes): {never}"
    if len(data) > 1 and data[0] == 0x78 and (data[0] * 256 + data[1]) % 31 == 0:
        return f"{path.name} is a zlib-compressed file (as joblib writes): {never}"
    if data.startswith(b"PK\x03\x04"):
        return f"{path.name} is a zip archive: unpack it (an MLflow model: give the folder holding MLmodel)"
    return None


def origin_format(mf: ModelFile, booster: Any) -> str:
    """How the model was handed over: ``mlflow``, or the file's format, ``sklearn-`` before it when the scikit-learn
    wrapper saved it (its ``scikit_learn`` attribute)."""
    if mf.format == "mlflow":
        return "mlflow"
    return f"sklearn-{mf.format}" if booster.attr("scikit_learn") is not None else mf.format


def _read_mlflow(folder: Path) -> ModelFile:
    """The model file an MLflow model folder of the xgboost flavour names (``flavors.xgboost.data``), with its run id."""
    import yaml

    mlmodel = folder / "MLmodel"
    if not mlmodel.is_file():
        raise ModelError(
            f"{folder} is a folder without an MLmodel file",
            where=str(folder),
            fix="give a model file, or an MLflow model folder (it holds MLmodel)",
        )
    try:
        meta = yaml.safe_load(mlmodel.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"{mlmodel} is not valid YAML ({str(exc).splitlines()[0]})",
            where=str(mlmodel),
            fix="give an MLflow model folder as MLflow wrote it",
        ) from None
    flavors = meta.get("flavors") if isinstance(meta, dict) else None
    xgb_flavor = (flavors or {}).get("xgboost") if isinstance(flavors, dict) else None
    if not isinstance(xgb_flavor, dict) or not xgb_flavor.get("data"):
        names = ", ".join(flavors or {}) if isinstance(flavors, dict) else "none"
        raise ModelError(
            f"the MLflow model {folder} is not of the xgboost flavour (its flavours: {names or 'none'})",
            where=str(mlmodel),
            fix="log the model with mlflow.xgboost.log_model, or " + SAVE,
        )
    path = folder / str(xgb_flavor["data"])
    if not path.is_file() or folder.resolve() not in path.resolve().parents:
        raise ModelError(
            f"the MLflow model's file {xgb_flavor['data']} is not in {folder}", where=str(mlmodel), fix="give the whole MLflow model folder"
        )
    data = path.read_bytes()
    xgboost_format(path, data)
    run_id = meta.get("run_id")
    return ModelFile(folder, path, data, "mlflow", str(run_id) if run_id else None)


def load(mf: ModelFile) -> Any:
    """The booster, or a :class:`ModelError` naming the file when it is corrupt or truncated. XGBoost first reads
    it in a child process: some damaged UBJSON files crash XGBoost instead of raising an error."""
    import xgboost as xgb

    problem = _probe(mf.data)
    if problem is None:
        try:
            booster = xgb.Booster()
            booster.load_model(bytearray(mf.data))
            return booster
        except xgb.core.XGBoostError as exc:
            problem = _xgb_line(str(exc))
    raise ModelError(
        f"{mf.path} is corrupt or truncated: XGBoost cannot read it ({problem})",
        where=str(mf.path),
        fix="copy the file again from where it was saved, or " + SAVE,
    )


_PROBE = """
import sys, xgboost
try:
    xgboost.Booster().load_model(bytearray(sys.stdin.buffer.read()))
except xgboost.core.XGBoostError as exc:
    sys.stdout.write(str(exc))
"""


def _probe(data: bytes) -> str | None:
    """What XGBoost says reading ``data`` in a child process (``None``: it read it)."""
    done = subprocess.run([sys.executable, "-c", _PROBE], input=data, capture_output=True, timeout=600, check=False)
    if done.returncode < 0:
        return f"XGBoost crashed reading it (signal {-done.returncode})"
    if done.returncode:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"the reading process failed with exit code {done.returncode}"
    return _xgb_line(done.stdout.decode(errors="replace")) if done.stdout.strip() else None


def _xgb_line(text: str) -> str:
    """XGBoost's message without its timestamp, source position and stack trace."""
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return line.split(": ", 1)[-1] if line.startswith("[") else line
