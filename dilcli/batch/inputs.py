"""Inputs of a batch: files, folders and glob patterns, expanded into input files.

Walks always end (links to folders are not followed, no folder is entered twice),
never take the output folder's files in, and give every input a place under the
output folder that cannot leave it. A Zarr store is a folder but one image input: it
is taken whole, never walked into.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dilcli.batch.tasks import BatchError, InputFile, TaskResult

_GLOB_CHARS = set("*?[")


def find_inputs(specs, *, recursive=False, extensions=frozenset(), sniff=True, exclude=None):
    """Expand files, folders and glob patterns into input files.

    Returns ``(inputs, skipped)``, ``skipped`` being ``TaskResult``s that say why a
    path was left out (missing, special file, dangling link, ...). Hidden entries of
    folders are ignored; folder entries count when their extension is in
    ``extensions`` or, with ``sniff``, their first bytes look like an image or array;
    with ``sniff`` too, a Zarr store (a folder named ``*.zarr``, or holding Zarr's
    metadata) is one input wherever it is found, and is never walked into.
    A path named on its own that cannot be an input (a FIFO, a device, a broken link)
    is *failed*, not skipped: the user asked for it. A link to a folder named on its
    own is followed; inside folders and under ``**``, such links are not, and no
    folder is entered twice, so walks always end. Nothing under ``exclude`` (the
    output folder) is ever an input.
    """
    inputs, skipped, seen = [], [], set()
    excluded = os.path.realpath(exclude) if exclude is not None else None

    def add(path, relative):
        real = os.path.realpath(path)
        if real in seen or (excluded and is_within(real, excluded)):
            return
        seen.add(real)
        # '..' after a link means the link target's parent, as the OS resolves it, not
        # what abspath's text rule gives: such paths are taken resolved.
        where = real if ".." in Path(path).parts else os.path.abspath(path)
        inputs.append(InputFile(Path(where), _confined(relative, path), str(path)))

    for spec in specs:
        spec = str(spec)
        path = Path(spec)
        if not os.path.lexists(path) and _GLOB_CHARS & set(spec):
            matches = sorted(_glob(spec, recursive=recursive, excluded=excluded))
            if not matches:
                skipped.append(_failed(path, "no file matches this pattern"))
            base = _glob_base(spec)
            for match in matches:
                reason = _unusable(Path(match))
                if reason:
                    skipped.append(_skipped(Path(match), reason))
                elif not Path(match).is_dir() or (sniff and is_store(match)):
                    add(match, os.path.relpath(match, base))  # mirrors 'tiles/**/*.tif'
            continue
        reason = _unusable(path)
        if reason and reason != "link to a folder, not followed":
            skipped.append(_failed(path, reason))
        elif path.is_dir() and not (sniff and is_store(path)):
            for file, relative, why in _walk(path, recursive, excluded, stores=sniff):
                if why:
                    skipped.append(_skipped(file, why))
                elif file.suffix.lower() in extensions or (sniff and _looks_like_data(file)):
                    add(file, relative)  # a file of data, or a store (_walk yields only those)
        else:
            add(path, path.name)
    return inputs, skipped


def is_store(path):
    """Whether ``path`` is a folder that is one image: a Zarr store (named ``*.zarr``,
    or holding Zarr's metadata; :func:`dilcli.io.regions.open_reader` reads it)."""
    from dilcli.io.regions import is_zarr_store

    path = Path(path)
    return path.is_dir() and (path.name.lower().endswith(".zarr") or is_zarr_store(path))


def is_within(path, folder):
    """Whether ``path`` is ``folder`` or lies below it (both absolute and normalised)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _confined(relative, path):
    """``relative`` made safe to join to the output folder: no ``..``, never absolute.

    A glob such as ``'in/*/../../*.png'`` matches files outside its fixed part; their
    outputs go to the top of the output folder, under their own name.
    """
    relative = os.path.normpath(relative)
    if os.path.isabs(relative) or relative == ".." or relative.startswith(".." + os.sep):
        return Path(Path(path).name)
    return Path(relative)


def _glob_base(pattern):
    """The folder a glob pattern starts from: its parts before the first wildcard."""
    parts = []
    for part in Path(pattern).parts[:-1]:
        if _GLOB_CHARS & set(part):
            break
        parts.append(part)
    return os.path.join(*parts) if parts else "."


def _glob(pattern, *, recursive, excluded=None):
    """Paths matching ``pattern``, like :func:`glob.glob`, but walks that always end.

    ``**`` (with ``recursive``) descends into real sub-folders only: links to folders
    are not followed and no folder is entered twice, so link cycles cannot make it
    loop. Names starting with ``.`` match only a pattern part starting with ``.``, as
    in the shell; ``excluded`` (the output folder) is not entered.
    """
    import fnmatch

    parts = Path(pattern).parts
    root, parts = (parts[0], parts[1:]) if os.path.isabs(pattern) else ("", parts)
    visited = set()

    def entries(folder):
        try:
            with os.scandir(folder or ".") as listing:
                return sorted(listing, key=lambda e: e.name)
        except OSError:
            return []

    def walk(folder, index):
        if index == len(parts):
            yield folder
            return
        part = parts[index]
        if recursive and part == "**":
            real = os.path.realpath(folder or ".")
            if real in visited or (excluded and is_within(real, excluded)):
                return
            visited.add(real)
            yield from walk(folder, index + 1)  # ** matches no folder too
            for entry in entries(folder):
                hidden = entry.name.startswith(".")
                # A store is an image, not a folder of them: never walked into.
                if not hidden and entry.is_dir(follow_symlinks=False) and not is_store(entry.path):
                    yield from walk(os.path.join(folder, entry.name), index)
        elif not _GLOB_CHARS & set(part):
            path = os.path.join(folder, part)
            if index + 1 == len(parts) and os.path.lexists(path) or os.path.isdir(path):
                yield from walk(path, index + 1)
        else:
            part = part.replace("**", "*")
            for entry in entries(folder):
                hidden = entry.name.startswith(".") and not part.startswith(".")
                if not hidden and fnmatch.fnmatchcase(entry.name, part):
                    yield from walk(os.path.join(folder, entry.name), index + 1)

    # One match per path: '**/**' can reach a file by more than one route.
    return list(dict.fromkeys(walk(root, 0)))


def _walk(folder, recursive, excluded=None, *, stores=False):
    """Yield (path, path relative to folder, reason to skip or None), sorted, no loops.

    Links to folders are not followed and no folder is entered twice (bind mounts),
    so walks end; ``excluded`` (the output folder, when the user put it inside an
    input folder) is not entered. With ``stores``, a Zarr store is yielded as one
    entry (with or without ``recursive``), never entered.
    """
    stack, visited = [Path()], set()
    while stack:
        sub = stack.pop()
        try:
            info = os.stat(folder / sub)
            if (info.st_dev, info.st_ino) in visited:
                continue
            visited.add((info.st_dev, info.st_ino))
            entries = sorted(os.scandir(folder / sub), key=lambda e: e.name)
        except OSError as error:
            yield folder / sub, sub, f"cannot list folder: {error.strerror or error}"
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path, relative = Path(entry.path), sub / entry.name
            if entry.is_dir(follow_symlinks=False):
                if stores and is_store(path):
                    if not (excluded and is_within(os.path.realpath(path), excluded)):
                        yield path, relative, None
                    continue
                if recursive and not (excluded and is_within(os.path.realpath(path), excluded)):
                    subfolders.append(relative)
                continue
            reason = _unusable(path)
            if reason and "folder" in reason:
                if recursive:
                    yield path, relative, reason
                continue
            yield path, relative, reason
        stack.extend(reversed(subfolders))


def _unusable(path):
    """Why ``path`` cannot be an input (without opening it), or None."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return "no such file or folder"
    except OSError as error:
        return f"cannot read: {error.strerror or error}"
    if stat.S_ISLNK(info.st_mode):
        try:
            info = path.stat()
        except FileNotFoundError:
            return "dangling link (its target does not exist)"
        except OSError as error:  # ELOOP for link loops
            return f"broken link: {error.strerror or error}"
        if stat.S_ISDIR(info.st_mode):
            return "link to a folder, not followed"
    if stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode):
        return None
    kind = "FIFO" if stat.S_ISFIFO(info.st_mode) else "device or socket"
    return f"special file ({kind}), not opened"


def _looks_like_data(path):
    from dilcli.io.images import sniff

    if path.is_dir():  # a Zarr store, as _walk yields no other folder
        return True
    try:
        with open(path, "rb") as handle:
            return sniff(handle.read(16)) is not None
    except OSError:
        return False


def _skipped(path, reason):
    return TaskResult(_unplanned(path), "skipped", reason=reason)


def _failed(path, reason):
    return TaskResult(_unplanned(path), "failed", reason=reason)


def _unplanned(path):
    return InputFile(Path(os.path.abspath(path)), Path(Path(path).name), str(path))


def check_output_folder(out_dir, specs, *, allow_inside=False):
    """Refuse an output folder that is an input folder, or lies inside one unless allowed."""
    out_real = Path(os.path.realpath(out_dir))
    for spec in specs:
        if not Path(spec).is_dir():
            continue
        in_real = Path(os.path.realpath(spec))
        if out_real == in_real:
            raise BatchError(f"output folder {out_dir} is the input folder {spec}")
        if in_real in out_real.parents and not allow_inside:
            raise BatchError(
                f"output folder {out_dir} lies inside input folder {spec} "
                "(add --allow-output-in-input if you mean it)"
            )
