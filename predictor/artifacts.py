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
import re
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
        if is_booster_file(name):
            try:
                check_lightgbm_text(data)
            except ValueError as e:
                raise ModelNotReady(f"model file {path} is not a complete LightGBM model ({e}): refusing to load "
                                    "a truncated or corrupt model") from e
        contents[name] = data
    return manifest, contents


# ------------------------------------------------------------------------------------------------ booster text
# LightGBM's text parser trusts the file: it jumps to each tree at the byte offsets listed in `tree_sizes=` and reads
# arrays by the counts the file declares, so a file cut or corrupted *and* re-hashed into its manifest makes the C++
# library read past its buffer (SIGSEGV, the whole server gone) instead of raising. Every booster text is therefore
# checked here, in Python, before LightGBM sees it: the structure LightGBM relies on, and every index a prediction
# follows (children, split features, categorical bitsets) within range.
_HEADER_KEYS = ("version", "num_class", "num_tree_per_iteration", "label_index", "max_feature_idx", "feature_names")


def is_booster_file(name: str) -> bool:
    """LightGBM boosters are stored as `model*.txt` (model.txt, model_deviation.txt)."""
    return name.startswith("model") and name.endswith(".txt")


def check_lightgbm_text(data: bytes) -> None:
    """Raise ValueError naming the first structural fault of a LightGBM text model; return quietly if it is whole."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 text (byte {e.start})") from None
    if not text.startswith("tree\n"):
        raise ValueError("no 'tree' header line")
    first = text.find("\nTree=")
    end = text.find("\nend of trees\n")
    if end < 0:
        raise ValueError("no 'end of trees' marker")
    if first < 0 or first > end:
        raise ValueError("no tree before 'end of trees'")
    header_lines = [line for line in text[:first].split("\n")[1:] if line]
    if any(not re.fullmatch(r"[a-z_]+=[^\n]*", line) for line in header_lines):
        raise ValueError("a header line is not key=value")
    header = dict(line.split("=", 1) for line in header_lines)
    if len(header) != len(header_lines):
        raise ValueError("a header key is repeated")
    missing = [k for k in _HEADER_KEYS if k not in header]
    if missing:
        raise ValueError(f"header lacks {', '.join(missing)}")
    try:
        max_feature = int(header["max_feature_idx"])
        n_class = int(header["num_class"])
        per_iteration = int(header["num_tree_per_iteration"])
    except ValueError:
        raise ValueError("header counts are not integers") from None
    if not (0 <= max_feature < 1_000_000) or n_class < 1 or per_iteration < 1:
        raise ValueError("header counts out of range")
    for key in ("feature_names", "feature_infos", "monotone_constraints"):
        if key in header and len(header[key].split(" ")) != max_feature + 1:
            raise ValueError(f"{key} does not list max_feature_idx + 1 values")
    trees = text[first + 1:end + 1]  # from the first "Tree=" to the newline before "end of trees"
    blocks = trees.split("\n\n")
    if blocks and blocks[-1].strip() == "":
        blocks.pop()
    if "tree_sizes" in header:
        try:
            sizes = [int(x) for x in header["tree_sizes"].split(" ")]
        except ValueError:
            raise ValueError("tree_sizes holds a non-integer") from None
        if len(sizes) != len(blocks):
            raise ValueError(f"tree_sizes lists {len(sizes)} trees, the file holds {len(blocks)}")
        offset = 0
        for i, size in enumerate(sizes):
            if size <= 0 or not trees.startswith(f"Tree={i}\n", offset):
                raise ValueError(f"tree_sizes does not point at Tree={i}")
            offset += size
        if offset > len(trees) + 1:
            raise ValueError("tree_sizes runs past 'end of trees'")
    _check_tail(text[end + len("\nend of trees\n"):])
    if len(blocks) % per_iteration:
        raise ValueError(f"{len(blocks)} trees is not a multiple of num_tree_per_iteration={per_iteration}")
    for i, block in enumerate(blocks):
        _check_tree(i, block, max_feature)


_PARAMETER = re.compile(r"\[[a-z0-9_]+: [^\n\[\]]*\]")


def _check_tail(tail: str) -> None:
    """After the trees: feature_importances (name=count), parameters ([key: value] up to 'end of parameters'), and
    pandas_categorical (JSON). LightGBM's parameter reader crashes on a malformed or repeated line, so each is checked."""
    lines = tail.split("\n")
    i, seen = 0, set()
    while i < len(lines):
        line = lines[i]
        if line == "":
            i += 1
        elif line == "feature_importances:":
            i += 1
            while i < len(lines) and lines[i]:
                if not re.fullmatch(r"[^=\s]+=\d+", lines[i]):
                    raise ValueError("a feature_importances line is not name=count")
                i += 1
        elif line == "parameters:":
            i += 1
            keys = set()
            while i < len(lines) and lines[i] != "end of parameters":
                if not lines[i]:
                    i += 1
                    continue
                if not _PARAMETER.fullmatch(lines[i]):
                    raise ValueError("a parameters line is not [key: value]")
                key = lines[i][1:lines[i].index(":")]
                if key in keys:
                    raise ValueError(f"parameter {key} repeated")
                keys.add(key)
                i += 1
            if i == len(lines):
                raise ValueError("no 'end of parameters' marker")
            i += 1
        elif line.startswith("pandas_categorical:"):
            try:
                value = json.loads(line[len("pandas_categorical:"):])
            except ValueError:
                raise ValueError("pandas_categorical is not JSON") from None
            if value is not None and not isinstance(value, list):
                raise ValueError("pandas_categorical is not a list")
            i += 1
        else:
            raise ValueError(f"unexpected line after the trees: {line[:40]!r}")
        if line in seen and line:
            raise ValueError(f"section {line[:40]!r} repeated")
        seen.add(line)
    if not any(x.startswith("pandas_categorical:") for x in seen):
        # LightGBM always ends a saved model with this line: a file without it was cut short
        raise ValueError("no 'pandas_categorical' line: the file ends early")


_NUM = r"(?:-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|-?inf|nan)"
_NUMBERS = re.compile(f"{_NUM}(?: {_NUM})*")
_INTEGERS = re.compile(r"-?\d+(?: -?\d+)*")
_INTEGER_KEYS = {"split_feature", "decision_type", "left_child", "right_child", "leaf_count", "internal_count",
                 "cat_boundaries", "cat_threshold"}
_PER_NODE = ("split_feature", "split_gain", "threshold", "decision_type", "left_child", "right_child",
             "internal_value", "internal_weight", "internal_count")
_PER_LEAF = ("leaf_value", "leaf_weight", "leaf_count")
_CONVERT = {"split_feature", "decision_type", "left_child", "right_child", "threshold"}


def _numbers(i: int, key: str, value: str, n: int) -> list[float] | None:
    """Check `value` is exactly n numbers (integers for index arrays), one regex per line; values for the arrays
    whose ranges are checked next, None for the others."""
    count = value.count(" ") + 1 if value else 0
    if count != n:
        raise ValueError(f"Tree={i}: {key} has {count} values, expected {n}")
    integer = key in _INTEGER_KEYS
    if n and not (_INTEGERS if integer else _NUMBERS).fullmatch(value):
        raise ValueError(f"Tree={i}: {key} holds a value that is not {'an integer' if integer else 'a number'}")
    if key in _CONVERT or key.startswith("cat_"):
        return [int(x) for x in value.split(" ")] if integer else [float(x) for x in value.split(" ")]
    return None


def _check_tree(i: int, block: str, max_feature: int) -> None:
    """Every array LightGBM reads has the length the tree declares, every number parses, every index is in range."""
    lines = block.strip("\n").split("\n")
    if lines[0] != f"Tree={i}":
        raise ValueError(f"expected Tree={i}, found {lines[0][:40]!r}")
    if any("=" not in line for line in lines[1:]):
        raise ValueError(f"Tree={i}: a line is not key=value")
    tree = dict(line.split("=", 1) for line in lines[1:])
    if len(tree) != len(lines) - 1:
        raise ValueError(f"Tree={i}: a key is repeated")
    try:
        n_leaves, n_cat = int(tree["num_leaves"]), int(tree["num_cat"])
    except (KeyError, ValueError):
        raise ValueError(f"Tree={i}: num_leaves / num_cat missing") from None
    if n_leaves < 1 or n_cat < 0 or n_cat >= n_leaves:
        raise ValueError(f"Tree={i}: bad num_leaves / num_cat")
    if tree.get("is_linear", "0") != "0":
        raise ValueError(f"Tree={i}: linear trees are not served")
    n_nodes = n_leaves - 1
    arrays = {}
    for key in _PER_LEAF + (_PER_NODE if n_nodes else ()):
        if key not in tree and key not in ("leaf_weight", "internal_weight"):  # weights: optional in old files
            raise ValueError(f"Tree={i}: {key} missing")
        if key in tree:
            arrays[key] = _numbers(i, key, tree[key], n_leaves if key in _PER_LEAF else n_nodes)
    for key in ("shrinkage",):
        if key in tree:
            _numbers(i, key, tree[key], 1)
    if not n_nodes:
        return
    if any(not 0 <= f <= max_feature for f in arrays["split_feature"]):
        raise ValueError(f"Tree={i}: split_feature outside 0..{max_feature}")
    for key in ("left_child", "right_child"):
        if any(not (-n_leaves <= c < n_nodes) for c in arrays[key]):
            raise ValueError(f"Tree={i}: {key} points outside the tree")
    # a tree, not a graph: node 0 is the root, every other node and every leaf is the child of exactly one node
    # (TreeSHAP walks paths by depth and overruns its buffers on a shared or missing child)
    children = sorted(arrays["left_child"] + arrays["right_child"])
    if children != list(range(-n_leaves, 0)) + list(range(1, n_nodes)):
        raise ValueError(f"Tree={i}: children do not form a tree")
    left, right = arrays["left_child"], arrays["right_child"]
    stack, reached = [0], 0
    while stack:  # with every node the child of exactly one other, all reachable from the root means no cycle
        node = stack.pop()
        reached += 1
        stack += [c for c in (left[node], right[node]) if c >= 0]
        if reached > n_nodes:
            break
    if reached != n_nodes:
        raise ValueError(f"Tree={i}: children do not form a tree")
    if n_cat:
        if "cat_boundaries" not in tree or "cat_threshold" not in tree:
            raise ValueError(f"Tree={i}: categorical tree without cat_boundaries / cat_threshold")
        bounds = _numbers(i, "cat_boundaries", tree["cat_boundaries"], n_cat + 1)
        if bounds[0] != 0 or any(b < a for a, b in zip(bounds, bounds[1:])):
            raise ValueError(f"Tree={i}: cat_boundaries not increasing from 0")
        _numbers(i, "cat_threshold", tree["cat_threshold"], bounds[-1])
    for node, kind in enumerate(arrays["decision_type"]):
        if not 0 <= kind < 128:
            raise ValueError(f"Tree={i}: bad decision_type")
        if kind & 1:  # categorical split: its threshold indexes cat_boundaries
            t = arrays["threshold"][node]
            if not (0 <= t < n_cat and t == int(t)):
                raise ValueError(f"Tree={i}: categorical split {node} points outside cat_boundaries")
