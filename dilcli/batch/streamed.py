"""Images larger than memory: one input computed and written in bands of rows.

An image job (:mod:`dilcli.batch.jobs`) asks :func:`decide` whether an input is read
whole (today's fast path, unchanged) or streamed: streamed when it can be read in parts
(:func:`dilcli.io.regions.open_reader`) and the whole-image working set, estimated from
the header, is over ``--max-memory``. A streamed input runs through :func:`run_streamed`:
the job's steps (:mod:`dilcli.core.tiling`) give every output's rows band by band,
bit-identical to the whole image; each band is mapped to pixels by the same
:class:`dilcli.render.display.Rendering` code as whole images and written by
:func:`dilcli.io.regions.open_writer`, which renames each output into place only when
complete (so a killed run leaves no output under a final name, and resumes).

On a Dask cluster (``--scheduler``) the bands of a streamed input are Dask tasks of
their own: the task of the input submits them from its worker
(:func:`distributed.worker_client`), and each band reads its rows (and halo) from the
shared input. A Zarr output's bands are written by their own tasks, straight into the
temporary store the input's task made (whole chunk rows each, so no two tasks write
one chunk; the input's task completes the chunk rows that two bands share and renames
the store into place once every band succeeded). Other formats' bands come back to
the input's task, which writes them in order, at most a few in flight. The values are
those of a local run.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np

from dilcli.io.regions import TILE

# The default of --max-memory: an eighth of the machine's memory, at most 512 MiB, at
# least 64 MiB. 512 MiB keeps a streamed run (bands, the reader's tiles, the writers'
# queues and Python itself) under 1 GB; an eighth leaves room for -j workers.
DEFAULT_MAX_MEMORY_CAP = 512 * 2**20
MIN_MAX_MEMORY = 64 * 2**20
# A band's own rows take at most this much of --max-memory (the reader's tiles and the
# writers come on top): taller bands buy little speed and cost the user's memory. At
# 12000^2 (Laplacian, d = 1..8, PNG) 16 MiB bands peaked at 92 MB against 126 MB with
# 32 MiB and 146 MB with 120 MiB, for about a tenth more time than 120 MiB.
MAX_BAND_BYTES = 16 * 2**20
# ... unless such bands would compute more than twice the rows a stack's layers own
# (every layer recomputes the halo of the layers after it): then bands take all of
# --max-memory. convolve's steps read only the input, whose halo is read, not computed.
MAX_WORK_RATIO = 2.0
# The formats read in parts (dilcli.io.regions.open_reader): no pixel limit, memory
# bounded by --max-memory. Named when an image decoded whole is over --max-pixels.
STREAMED_FORMATS = "TIFF, .npy and Zarr"
# How each format read whole is named in that message (dilcli.io.images.sniff's kinds).
_WHOLE_FORMAT_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "GIF": "GIF", "BMP": "BMP", "WEBP": "WebP"}
# Bands of one input in flight on a Dask cluster, per worker thread; of those whose
# pixels come back to the input's task (to be written in order), at most this many, as
# each waits on its worker until written (a band's outputs take up to MAX_BAND_BYTES).
BANDS_IN_FLIGHT_PER_THREAD = 2
RETURNED_BANDS_IN_FLIGHT = 4


# The Dask event topic of a streamed input's bands: (input path, bands done, bands).
BAND_TOPIC = "dilcli-bands"
_band_listener = None


@contextlib.contextmanager
def band_progress(listener):
    """While inside, ``listener(input path, bands done, bands)`` is called in this
    process as each band of a streamed input is computed (the batch's progress). On a
    Dask worker the same reports go to the client as events of :data:`BAND_TOPIC`
    (:func:`dilcli.batch.workers.dask_results` passes them on)."""
    global _band_listener
    previous, _band_listener = _band_listener, listener
    try:
        yield
    finally:
        _band_listener = previous


def _report_band(path, done, total, worker=None):
    """Say that ``done`` of the ``total`` bands of ``path`` are computed (progress never
    stops an input: a failing report is dropped)."""
    with contextlib.suppress(Exception):
        if worker is not None:
            worker.log_event(BAND_TOPIC, (str(path), done, total))
        elif _band_listener is not None:
            _band_listener(str(path), done, total)


def default_max_memory():
    """min(512 MiB, RAM / 8), at least 64 MiB: of the machine that runs the input."""
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return DEFAULT_MAX_MEMORY_CAP
    return max(MIN_MAX_MEMORY, min(DEFAULT_MAX_MEMORY_CAP, ram // 8))


@dataclass(frozen=True)
class Output:
    """One file of a streamed input: the emitted rows it shows (``sources``: one
    output of the steps, or two whose difference it is: a starlet plane), how it is
    shown without --map (its :class:`dilcli.render.display.DefaultDisplay`, the same
    as the whole-image path's), and whether a single channel is dropped (one channel
    in, one out, as the whole-image path does)."""

    sources: tuple
    shown: object
    squeeze: bool = False


@dataclass(frozen=True)
class Decision:
    """How one input runs: ``streamed`` or whole, and why (``reason``: for an input
    read whole, in words that end the --max-pixels message; empty for a format decoded
    whole, whose words :func:`over_pixel_limit` finds). ``pixel_limit``: whether
    a whole read is bound by --max-pixels (not when the whole image fits in
    --max-memory: memory bounds inputs read in parts, whatever their pixel count)."""

    streamed: bool
    shape: tuple
    whole_bytes: int
    budget: int
    reason: str = ""
    pixel_limit: bool = True


def decide(job, path):
    """(:class:`Decision`, open reader or None) for ``path`` under ``job``'s limits.

    An input that can be read in parts (:func:`dilcli.io.regions.open_reader`) is read
    whole when its working set fits in ``--max-memory``, and in bands when not, however
    many pixels its header claims; ``--max-pixels`` bounds only what is read whole past
    ``--max-memory``: formats decoded whole, every frame (``--frames all``), layouts
    the band reader leaves to the whole-image decoder, and inputs whose options need
    every pixel at once (``--montage``, ``--map stretch``).

    Raises :class:`~dilcli.io.images.ImageError` for a file the band reader refuses
    (damaged, a header whose sizes do not hold together) or a band of one row that is
    over ``--max-memory`` (an image too wide for it).
    """
    from dilcli.io.regions import open_reader

    if job.frames == "all":
        reason = _read_whole("--frames all decodes every frame whole", " without it")
        return Decision(False, (), 0, 0, reason), None
    reader = open_reader(path, max_pixels=0, allow_truncated=job.allow_truncated)
    if reader is None:
        return Decision(False, (), 0, 0), None  # why: over_pixel_limit, if ever asked
    try:
        budget = job.max_memory or default_max_memory()
        whole = job.whole_image_bytes(reader.shape)
        if whole <= budget:
            reader.close()
            fits = Decision(False, reader.shape, whole, budget, "fits in --max-memory", False)
            return fits, None
        if job.needs_whole_image():
            reader.close()
            reason = _read_whole(*whole_image_need(job))
            return Decision(False, reader.shape, whole, budget, reason), None
        _check_one_row(job, reader, budget)
    except BaseException:
        reader.close()
        raise
    return Decision(True, reader.shape, whole, budget), reader


def whole_image_need(job):
    """What ``job``'s options that need every pixel say of themselves, and the words
    for reading without them: ("--montage needs the whole image", " without it")."""
    options = job.whole_image_options()
    if " and " in options:
        return f"{options} need the whole image", " without them"
    return f"{options} needs the whole image", " without it"


def _read_whole(why, streams=""):
    """The end of the --max-pixels message for an image read whole ``why``."""
    return f"{why}: raise --max-pixels, 0 for no limit; {STREAMED_FORMATS} stream in bands{streams}"


def over_pixel_limit(error, decision, path):
    """The one-line ImageError of ``path`` over --max-pixels (``error``, a
    :class:`~dilcli.io.images.PixelLimitError`), read whole as ``decision`` says: why
    it is read whole, how to lift the limit, and which formats stream."""
    from dilcli.io.images import ImageError

    return ImageError(f"{error.size} ({decision.reason or _decoded_whole(path)})")


def _decoded_whole(path):
    """Why ``path`` is decoded whole, for the --max-pixels message (its format is
    sniffed again only then: an error, not every input, pays the second look)."""
    from dilcli.io.images import ImageError, _read_head, sniff

    try:
        kind = sniff(_read_head(path))
    except ImageError:  # a folder (a Zarr store) or a file gone since
        kind = None
    if kind in _WHOLE_FORMAT_NAMES:
        what = f"{_WHOLE_FORMAT_NAMES[kind]} is decoded whole"
    elif kind == "NPY":
        what = "a Fortran-ordered .npy is decoded whole"
    elif kind == "TIFF":
        what = "this TIFF's layout is decoded whole"
    else:
        what = "it is decoded whole"
    return _read_whole(what)


def _check_one_row(job, reader, budget):
    """An ImageError when even a band of one row is over ``budget``: the band of an
    image too wide (or a stack too deep) for --max-memory, as its header says."""
    from dilcli.core import tiling
    from dilcli.io.images import ImageError

    steps, emit, _ = job.stream_steps(reader.shape, reader.bits)
    plan = tiling.plan_bands(steps, reader.shape, emit=emit, budget=0, band_rows=1)
    # The writers' buffers are left out: band_plan takes them from the budget when
    # there is room, and they grow with the width as the band does. A band of one row
    # may take MIN_MAX_MEMORY under a smaller --max-memory (tiny budgets force bands
    # on small images in tests), never more.
    least = plan.working_memory() + reader.working_bytes(1)
    if least > max(budget, MIN_MAX_MEMORY):
        width = reader.shape[1]
        raise ImageError(
            f"a band of one row of this {width:,}-pixel-wide image needs {_mib(least)}, "
            f"over --max-memory ({_mib(budget)}): raise it"
        )


def band_plan(job, shape, budget, *, reader):
    """The :class:`dilcli.core.tiling.BandPlan` of ``reader``'s image in ``budget``."""
    from dilcli.core import tiling

    steps, emit, outputs = job.stream_steps(shape, reader.bits)
    overhead = writers_bytes(job, shape, outputs)
    room = max(budget - overhead, budget // 4)  # for the band and the reader's tiles
    plan = tiling.plan_bands(steps, shape, emit=emit, budget=min(room, MAX_BAND_BYTES))
    if plan.work_ratio() > MAX_WORK_RATIO:  # thin bands of a stack: mostly halo
        plan = tiling.plan_bands(steps, shape, emit=emit, budget=room)
    # The reader's decoded tiles come on top of the band: shrink until both fit.
    while plan.band_rows > 1:
        if plan.working_memory() + reader.working_bytes(plan.band_rows) <= room:
            break
        plan = tiling.plan_bands(steps, shape, emit=emit, budget=0, band_rows=plan.band_rows // 2)
    if job.rendering.fmt == "zarr":
        # Bands of whole chunk rows (over the band cap if --max-memory has room): on a
        # cluster each band then writes its own chunks (mode 'same'), and hands back
        # only the rows two bands share otherwise.
        rows = max(plan.band_rows // TILE, 1) * TILE
        aligned = tiling.plan_bands(steps, shape, emit=emit, budget=0, band_rows=rows)
        if aligned.working_memory() + reader.working_bytes(aligned.band_rows) <= room:
            plan = aligned
    return plan, outputs


def writers_bytes(job, shape, outputs):
    """What the writers of ``outputs`` hold, whatever the band: a row of tiles and the
    tiles being compressed (TIFF); a row of chunks, zarr's copies of them and their
    encoded bytes (Zarr); a block being filled and one being deflated (PNG)."""
    from dilcli.io.png import PNG_BLOCK_BYTES

    height, width = shape[:2]
    channels = shape[2] if len(shape) == 3 else 1
    row_of_tiles = TILE * width * channels * 4
    block = min(PNG_BLOCK_BYTES, height * (width * channels * 2 + 1))
    each = {"tiff": row_of_tiles + 4 * 2**20, "zarr": 3 * row_of_tiles, "png": 2 * block}
    return len(outputs) * each.get(job.rendering.fmt, 0)


def plan_details(job, path):
    """What :meth:`ImageInput.plan_details` reports (see there); ``{}`` for an input
    read whole. Raises what the run would fail with (the dry run names it)."""
    decision, reader = decide(job, path)
    if reader is None:
        return {}  # read whole, as every input used to be: nothing to add
    details = {
        "streamed": decision.streamed,
        "shape": tuple(decision.shape),
        "whole_image_bytes": decision.whole_bytes,
        "max_memory": decision.budget,
    }
    try:
        plan, outputs = band_plan(job, reader.shape, decision.budget, reader=reader)
        details.update(
            band_rows=plan.band_rows,
            bands=plan.bands,
            halo=plan.halo(),
            working_memory=plan.working_memory()
            + reader.working_bytes(plan.band_rows)
            + writers_bytes(job, reader.shape, outputs),
            outputs=len(outputs),
        )
    finally:
        reader.close()
    return details


def describe(details):
    """One line for ``-v``: the plan of a streamed input."""
    top, bottom = details["halo"]
    return (
        f"streamed in {details['bands']} bands of {details['band_rows']} rows "
        f"(halo {top} above, {bottom} below; about {_mib(details['working_memory'])} of "
        f"{_mib(details['max_memory'])} --max-memory; the whole image would take "
        f"{_mib(details['whole_image_bytes'])})"
    )


def _mib(size):
    return f"{size / 2**20:,.1f} MiB" if size < 10 * 2**20 else f"{size / 2**20:,.0f} MiB"


# --- running ---------------------------------------------------------------------------


def run_streamed(job, path, reader, budget, output_paths):
    """Compute and write every output of ``path`` band by band; returns the notes."""
    from dilcli.io.regions import open_writer

    plan, outputs = band_plan(job, reader.shape, budget, reader=reader)
    shapes = [_output_shape(job, plan, output, reader) for output in outputs]
    check_disk_space(job, shapes, output_paths)
    _reuse_freed_memory()
    writers, pending = [], []
    # Each output writes (deflates, compresses) its band on a thread of its own while
    # the next band is computed: one band in flight at most, the outputs in parallel.
    with contextlib.ExitStack() as stack:
        pools = [stack.enter_context(_writer_thread()) for _ in outputs]
        try:
            for (shape, dtype), target in zip(shapes, output_paths, strict=False):
                fmt, options = job.rendering.fmt, _writer_options(job, dtype)
                writers.append(open_writer(target, shape=shape, dtype=dtype, fmt=fmt, **options))
            for _, blocks in _bands(job, path, plan, outputs, reader, writers):
                _settle(pending)
                pending = [
                    pool.submit(writer.write_rows, start, block)
                    for pool, writer, (start, block) in zip(pools, writers, blocks, strict=True)
                ]
            _settle(pending)
            for writer in writers:
                writer.commit()
        except BaseException:
            for future in pending:
                future.cancel()
            for future in pending:
                with contextlib.suppress(BaseException):
                    future.result()
            for writer in writers:
                writer.abort()
            raise
    return reader.notes


def check_disk_space(job, shapes, output_paths):
    """An ImageError (one line) when the outputs of exact size (``.npy``, uncompressed
    TIFF) cannot fit in their folder's free space, before anything is written: a small
    file whose header claims gigapixels must not fill the disk. Compressed outputs,
    whose size is not known before, go ahead (a full disk is then reported by the
    writer that meets it, and its temporary removed)."""
    import shutil

    from dilcli.io.images import ImageError
    from dilcli.io.regions import output_size

    needed = {}  # folder -> (bytes, names)
    for (shape, dtype), target in zip(shapes, output_paths, strict=False):
        options = _writer_options(job, dtype)
        size, exact = output_size(shape=shape, dtype=dtype, fmt=job.rendering.fmt, **options)
        if exact:
            folder = os.path.dirname(os.path.abspath(target))
            total, names = needed.get(folder, (0, []))
            needed[folder] = (total + size, [*names, os.path.basename(target)])
    for folder, (size, names) in needed.items():
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            continue  # the writer says what is wrong with the folder
        if size > free:
            more = f" and {len(names) - 1} more output(s)" if len(names) > 1 else ""
            raise ImageError(
                f"not enough disk space: {names[0]}{more} would take {bytes_text(size)}, "
                f"{folder} has {bytes_text(free)} free"
            )


def _writer_options(job, dtype):
    """:func:`dilcli.io.regions.open_writer`'s options for an output of ``dtype``: those
    of the whole-image path (PNG's compression level, a TIFF's layout)."""
    from dilcli.io.regions import tiff_layout

    if job.rendering.fmt == "png":
        return {"compression": job.rendering.compression}
    return tiff_layout(dtype) if job.rendering.fmt == "tiff" else {}


def bytes_text(size):
    """Bytes for messages: "3.2 GiB", "412 MiB", "1.4 MiB" (vocab.size_text is a
    kernel's or field's size: "3x3")."""
    return f"{size / 2**30:,.1f} GiB" if size >= 2**30 else _mib(size)


def _reuse_freed_memory():
    """Keep the memory of freed bands for the next band (glibc's malloc only).

    Each band allocates arrays of the same few sizes. glibc maps arrays over its mmap
    threshold afresh and trims its heap as soon as they are freed, so every band
    faulted its pages in again: at 12000^2 (Laplacian, d = 1..8, 21-row bands) 650,000
    page faults and 2.2 s of system time, against 23,000 and 0.7 s with these settings
    at the same peak memory. Freed memory is kept up to the band cap, never more.
    """
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, MAX_BAND_BYTES)
    mallopt(m_trim_threshold, 2 * MAX_BAND_BYTES)


def _writer_thread():
    """One output's writer thread; none (writes run at once) on one core."""
    from concurrent.futures import ThreadPoolExecutor

    from dilcli.batch.jobs import _Inline
    from dilcli.core.parallel import threads

    if threads() > 1:
        return ThreadPoolExecutor(1, thread_name_prefix="dilcli-writer")
    return _Inline()


def _settle(futures):
    """Wait for every write of the band in flight; raise the first failure."""
    for future in futures:
        future.result()


def _bands(job, path, plan, outputs, reader, writers):
    """``(band, [(first row, block) per output])`` in order, here or on the cluster;
    nothing when the cluster's tasks write every band into ``writers`` themselves."""
    client = _dask_worker_client()
    if client is None:
        for band in range(plan.bands):
            yield band, band_blocks(job, plan, outputs, reader, band)
            _report_band(path, band + 1, plan.bands)
        return
    from distributed import get_worker

    worker = get_worker()
    with client as dask:
        regions = [writer.regions() for writer in writers]
        if regions and None not in regions:
            for band in _dask_regions(dask, job, path, plan, outputs, writers, regions):
                _report_band(path, band + 1, plan.bands, worker)
        else:
            for band, blocks in _dask_bands(dask, job, path, plan, outputs):
                yield band, blocks
                _report_band(path, band + 1, plan.bands, worker)


def band_blocks(job, plan, outputs, reader, band):
    """Every output's rows of ``band``, as the file takes them (pixels or float32)."""
    from dilcli.core import tiling

    rows = tiling.compute_band(plan, band, reader.read)
    ranges = plan.ranges(band)
    blocks = []
    for output in outputs:
        first = output.sources[0]
        start, stop = ranges[first]
        response = rows[first]
        if len(output.sources) == 2:  # a starlet plane: c_(j-1) - c_j
            response = response - rows[output.sources[1]]
        alpha = None
        if reader.has_alpha and stop > start and plan.shapes[first][:2] == reader.shape[:2]:
            alpha = reader.read_alpha(start, stop)
        blocks.append((start, job.band_to_file(response, output, reader.bits, alpha)))
    return blocks


def _output_shape(job, plan, output, reader):
    """``(shape, dtype)`` of an output file, from what an empty band becomes."""
    first = output.sources[0]
    height = plan.shapes[first][0]
    empty = np.zeros((0,) + tuple(plan.shapes[first][1:]), np.float32)
    alpha = None
    if reader.has_alpha and plan.shapes[first][:2] == reader.shape[:2]:
        alpha = np.zeros((0, plan.shapes[first][1]), np.float32)
    block = job.band_to_file(empty, output, reader.bits, alpha)
    return (height,) + block.shape[1:], block.dtype


# --- one image across a Dask cluster ------------------------------------------------------


def _dask_worker_client():
    """A client to the cluster this task runs on (seceding from the worker's pool), or
    None when not running as a Dask task (local runs never import Dask)."""
    import sys

    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import get_worker, worker_client
    except ImportError:
        return None
    try:
        get_worker()
    except ValueError:
        return None
    return worker_client()


def _dask_bands(client, job, path, plan, outputs):
    """Bands as Dask tasks, yielded in order as their blocks come back; a few in flight."""
    in_flight = min(_in_flight(client), RETURNED_BANDS_IN_FLIGHT)
    yield from _in_order(client, job, path, plan, outputs, None, in_flight)


def _dask_regions(client, job, path, plan, outputs, writers, regions):
    """Bands as Dask tasks that write their Zarr regions themselves; the rows two bands
    share go to ``writers`` here. Yields each band as it is written; raises the first
    band's failure, once no band runs."""
    results = _in_order(client, job, path, plan, outputs, regions, _in_flight(client))
    try:
        for band, written in results:
            for writer, (elsewhere, ends) in zip(writers, written, strict=True):
                writer.written_elsewhere(elsewhere)
                for row, rows in ends:
                    writer.write_region(row, rows)
            yield band
    finally:
        results.close()  # on a failure here: once the bands still running have ended


def _in_flight(client):
    threads = sum(client.nthreads().values()) or 1
    return max(2, BANDS_IN_FLIGHT_PER_THREAD * threads)


def _in_order(client, job, path, plan, outputs, regions, in_flight):
    """``(band, result of compute_band_task)`` in band order, ``in_flight`` at most
    submitted at once. On a failure, bands that write regions are waited for (they may
    be writing into a temporary about to be removed); others are cancelled."""
    from collections import deque

    import distributed

    pending = deque()
    next_band = 0
    try:
        while next_band < plan.bands or pending:
            while next_band < plan.bands and len(pending) < in_flight:
                future = client.submit(
                    compute_band_task, job, path, plan, outputs, next_band, regions, pure=False
                )
                pending.append((next_band, future))
                next_band += 1
            band, future = pending.popleft()
            yield band, future.result()
    except BaseException:
        if regions is not None:
            with contextlib.suppress(Exception):
                distributed.wait([future for _, future in pending])
        raise
    finally:
        client.cancel([future for _, future in pending])


def compute_band_task(job, path, plan, outputs, band, regions=None):
    """One band on a Dask worker, with its own reader of the shared input: its blocks,
    or (with ``regions``, one :class:`dilcli.io.regions.ZarrRegion` per output) what
    :meth:`~dilcli.io.regions.ZarrRegion.write` left to the input's task."""
    from dilcli.io.regions import open_reader

    reader = open_reader(path, max_pixels=0, allow_truncated=job.allow_truncated)
    if reader is None:
        from dilcli.io.images import ImageError

        raise ImageError("cannot be read in parts on this worker")
    with reader:
        blocks = band_blocks(job, plan, outputs, reader, band)
    if regions is None:
        return blocks
    return [region.write(start, block) for region, (start, block) in zip(regions, blocks)]
