"""Planning a batch: one task per input, with output names that never collide.

Outputs mirror each input's sub-folder, always inside the output folder; a name too
long for a file system, or one that would replace an input, makes the task fail
instead of run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from dilcli.batch.inputs import is_within
from dilcli.batch.record import _record_name, source_identity
from dilcli.batch.tasks import Task

NAME_MAX = 255  # bytes in one file name, on every common file system


def plan_tasks(inputs, out_dir, job):
    """One task per input: output paths under ``out_dir`` and a resume key.

    Outputs mirror each input's sub-folder. Inputs whose outputs would share names
    are told apart, never overwritten: two with one stem in one folder (``a.png``,
    ``a.jpg``) get their extension in the stem, and any that still collide (``x.png``
    from two folders named on the command line) a number, ``x_2``. A task whose
    output would replace another input of the batch gets a ``conflict``: it fails
    instead of running.
    """
    out_dir = Path(os.path.abspath(out_dir))
    by_target = {}
    for item in inputs:
        by_target.setdefault((item.relative.parent, item.path.stem), []).append(item)
    base = job.signature()
    signature = _canonical(base)
    sources = {os.path.realpath(item.path): item.path for item in inputs}
    taken, tasks = set(), []
    for item in inputs:
        stem = item.path.stem
        same_stem = by_target[(item.relative.parent, stem)]
        if len({other.path.suffix.lower() for other in same_stem}) > 1:
            stem = f"{stem}_{item.path.suffix.lstrip('.').lower() or 'noext'}"
        folder = out_dir / item.relative.parent
        candidate, number = stem, 1
        while True:
            names = _output_names(job, item.path, candidate)
            outputs = tuple(folder / name for name in names)
            if taken.isdisjoint(outputs):
                break
            number += 1
            candidate = f"{stem}_{number}"
        taken.update(outputs)
        clashes = [sources[r] for r in map(os.path.realpath, outputs) if r in sources]
        conflict = f"its output would overwrite the input {clashes[0]}" if clashes else None
        outside = [
            o for o, n in zip(outputs, names) if not os.path.isabs(n) and not _inside(o, out_dir)
        ]
        if outside:
            conflict = f"its output {outside[0]} would lie outside the output folder {out_dir}"
        too_long = [o.name for o in outputs if len(os.fsencode(o.name)) > NAME_MAX]
        if too_long:
            size = len(os.fsencode(too_long[0]))
            conflict = (
                f"its output name {too_long[0]} is {size} bytes long; file systems allow "
                f"{NAME_MAX} (rename the input)"
            )
        source = os.path.realpath(item.path)
        maker = _digest([source, signature])
        key = _task_key(item.path, maker, [_record_name(o, out_dir) for o in outputs])
        makers = tuple(_digest([source, scoped]) for scoped in _scoped(job, names, base))
        tasks.append(Task(item, outputs, key, conflict, maker, makers))
    return tasks


def _inside(output, out_dir):
    """Whether ``output`` lies inside ``out_dir``, links resolved as far as they exist.

    The last part is not resolved: a link there is replaced, never followed. A name
    the job made absolute (``signal --plot FILE``) is a place the user chose, and is
    not checked.
    """
    real = os.path.join(os.path.realpath(os.path.dirname(output)), os.path.basename(output))
    return is_within(real, os.path.realpath(out_dir)) and is_within(
        os.path.normpath(output), os.path.normpath(out_dir)
    )


def _scoped(job, names, signature):
    """Each output's own signature: the job's, narrowed by its ``output_scopes``."""
    scopes = getattr(job, "output_scopes", lambda names: [{} for _ in names])(names)
    return [_canonical({**signature, **scope}) for scope in scopes]


def _output_names(job, path, stem):
    suffix = path.suffix.lower()
    count_frames = getattr(job, "count_frames", None)
    frames = count_frames(path) if count_frames is not None else None
    if frames is None:
        return job.output_names(stem, suffix)
    return job.output_names(stem, suffix, frames=frames)


def _canonical(value):
    return json.dumps(value, sort_keys=True, default=_json_default)


def _json_default(value):
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot record {type(value).__name__}")


def _task_key(path, maker, outputs):
    try:
        identity = source_identity(path)
    except OSError:
        identity = [None, None]
    return _digest([maker, identity, list(outputs)])


def _digest(value):
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()
