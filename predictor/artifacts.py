"""Model artifacts on disk: LightGBM native text + JSON files + a manifest carrying the sha256 of each.

Nothing here unpickles: the booster is LightGBM's text format, everything else is JSON. A model directory is written
under a temporary name and renamed into place, and `models/current` is swapped with an atomic symlink replace, so a
training run killed midway leaves the previous model serving.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from features.errors import ModelNotReady

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = Path(os.environ.get("XLT_MODELS_DIR", ROOT / "models"))
CURRENT = "current"
MANIFEST = "manifest.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    import lightgbm
    import numpy
    import pandas
    import sklearn

    return {"python": platform.python_version(), "lightgbm": lightgbm.__version__, "numpy": numpy.__version__,
            "pandas": pandas.__version__, "scikit-learn": sklearn.__version__}


def write_model_dir(files: dict[str, str | bytes], manifest: dict, models_dir: Path | None = None,
                    make_current: bool = True) -> Path:
    """Write `files` (name → text/bytes) plus a manifest with their sha256 into models/<version>/, atomically."""
    models_dir = Path(models_dir or MODELS_DIR)
    models_dir.mkdir(parents=True, exist_ok=True)
    version = manifest.get("version") or time.strftime("%Y%m%d-%H%M%S")
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=models_dir))
    try:
        hashes = {}
        for name, content in files.items():
            path = tmp / name
            mode = "wb" if isinstance(content, bytes) else "w"
            with open(path, mode) as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            hashes[name] = sha256_file(path)
        manifest = {**manifest, "version": version, "files": hashes, "versions": library_versions(),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        final = models_dir / version
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if make_current:
        point_current(final, models_dir)
    return final


def point_current(model_dir: Path, models_dir: Path | None = None) -> None:
    """Swap models/current to `model_dir` with a symlink created aside and renamed over the old one."""
    models_dir = Path(models_dir or MODELS_DIR)
    link = models_dir / CURRENT
    tmp_link = models_dir / f".{CURRENT}.{os.getpid()}"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    os.symlink(Path(model_dir).name, tmp_link)
    os.replace(tmp_link, link)


def resolve_model_dir(path: str | os.PathLike | None = None) -> Path:
    """The model directory to load: an explicit path, $XLT_MODEL, or models/current."""
    if path is None:
        path = os.environ.get("XLT_MODEL") or (MODELS_DIR / CURRENT)
    return Path(path)


def read_verified(model_dir: Path) -> tuple[dict, dict[str, bytes]]:
    """Manifest and file contents, after checking every file's sha256; ModelNotReady on anything amiss."""
    model_dir = Path(model_dir)
    manifest_path = model_dir / MANIFEST
    if not manifest_path.exists():
        raise ModelNotReady(f"no model at {model_dir} (missing {MANIFEST}); run `xlt train` or `make serve`")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as e:
        raise ModelNotReady(f"model manifest {manifest_path} is unreadable: {e}") from e
    contents: dict[str, bytes] = {}
    for name, expected in manifest.get("files", {}).items():
        path = model_dir / name
        if not path.exists():
            raise ModelNotReady(f"model file {path} listed in the manifest is missing")
        data = path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise ModelNotReady(f"model file {path} fails its sha256 check (expected {expected[:12]}…, "
                                f"found {actual[:12]}…): refusing to serve a tampered or truncated model")
        contents[name] = data
    return manifest, contents
