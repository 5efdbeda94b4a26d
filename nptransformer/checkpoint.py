"""Checkpoints: one .npz file with parameters, Adam state and a JSON `meta` entry.

Array entries: param/NAME, adam/m/NAME, adam/v/NAME, adam/step. Everything else
(config, task, settings, random-generator states, history, format version) is in the
JSON string entry `meta`. Files are written to a temporary file in the same folder,
flushed, fsynced and renamed, so a crash mid-save leaves the previous file intact.
"""

import json
import os
import tempfile
import zipfile

import numpy

from .backend import to_numpy

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt or from another program."""


def save_checkpoint(path, model, optimizer, meta):
    """Write model parameters, optimizer state and meta (a JSON-able dict) atomically."""
    arrays = {}
    for name, param in model.parameters().items():
        arrays[f"param/{name}"] = to_numpy(param)
        arrays[f"adam/m/{name}"] = to_numpy(optimizer.m[name])
        arrays[f"adam/v/{name}"] = to_numpy(optimizer.v[name])
    arrays["adam/step"] = numpy.array(optimizer.step_count, dtype=numpy.int64)
    meta = dict(meta, format_version=FORMAT_VERSION)
    arrays["meta"] = numpy.array(json.dumps(meta))

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=".checkpoint-", suffix=".npz.tmp", dir=folder
    )
    try:
        # mkstemp creates the file readable by its owner only; give it the mode any
        # other file written here gets (0o666 less the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        with os.fdopen(handle, "wb") as file:
            numpy.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder):
    """Make the rename itself durable (a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def resolve_checkpoint_path(path):
    """Accept a checkpoint file or a run folder holding checkpoint.npz."""
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoint.npz")
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def load_checkpoint(path):
    """Read a checkpoint; return (arrays, meta), arrays a dict of NumPy arrays.

    Raises CheckpointError naming the file for anything that is not a complete
    nptransformer checkpoint. Never unpickles (allow_pickle=False).
    """
    path = resolve_checkpoint_path(path)
    try:
        loaded = numpy.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is truncated or corrupt ({error})"
        ) from None
    if not isinstance(loaded, numpy.lib.npyio.NpzFile):
        raise CheckpointError(
            f"{path} is a single .npy array, not an nptransformer checkpoint (.npz)"
        )
    try:
        with loaded as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as error:
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is truncated or corrupt ({error})"
        ) from None
    if "meta" not in arrays or "adam/step" not in arrays:
        raise CheckpointError(
            f"{path} is not an nptransformer checkpoint (no 'meta' or 'adam/step' entry)"
        )
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except json.JSONDecodeError as error:
        raise CheckpointError(
            f"checkpoint {path} has a corrupt meta entry ({error})"
        ) from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}; "
            f"this nptransformer reads version {FORMAT_VERSION}"
        )
    return arrays, meta


def split_state(arrays):
    """Split checkpoint arrays into (params, adam_m, adam_v, adam_step)."""
    params, m, v = {}, {}, {}
    for key, value in arrays.items():
        if key.startswith("param/"):
            params[key[len("param/") :]] = value
        elif key.startswith("adam/m/"):
            m[key[len("adam/m/") :]] = value
        elif key.startswith("adam/v/"):
            v[key[len("adam/v/") :]] = value
    return params, m, v, int(arrays["adam/step"])
