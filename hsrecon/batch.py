"""Batches of files: which inputs, which outputs, skipping finished work, and carrying on past bad files.

What rembg's folder command does, with the lessons of style.md: inputs are collected once (folders
walked without following symlinks, so a symlink loop cannot trap the walk), outputs are derived from
inputs and always land inside the output directory, complete outputs are skipped so a killed run
resumes, and one bad input is one recorded failure, never the end of the batch. The next image is
read while the current one runs. Temporaries a killed run left behind are removed before the batch
starts (only hsrecon's own names, for this batch's outputs, and never one a live process is writing).

:func:`convert_batch` is ``hsrecon convert`` as a library call: the weights' predictor built once, every
file through :func:`hsrecon.pipeline.convert_file`, and what happens told to a :class:`BatchEvents`.
"""

from __future__ import annotations

import errno
import fnmatch
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hsrecon.devices import rank_device
from hsrecon.inference import DeviceOutOfMemoryError
from hsrecon.inputs import canonical_space, photo_evidence
from hsrecon.io import (
    FORMATS,
    ConcurrentOutputError,
    CubeWriteError,
    OutputExistsError,
    is_complete,
    output_files,
    remove_stale_temps,
)
from hsrecon.io.base import preview_path
from hsrecon.io.rgb import IMAGE_SUFFIXES, ImageReadError, RGBImage, read_rgb
from hsrecon.pipeline import ConvertResult, convert_file
from hsrecon.plausible import check_weights_space
from hsrecon.temps import TEMP_PATTERN, live_temps
from hsrecon.weights import Weights
from hsrecon.windows import count_windows

__all__ = [
    "BatchEvents",
    "BatchItem",
    "BatchSummary",
    "ConvertSettings",
    "NoInputsError",
    "OutputFatalError",
    "collect_inputs",
    "convert_batch",
    "pending_formats",
    "plan_outputs",
    "run_batch",
    "shard",
    "torchrun_shard",
    "under_torchrun",
]

# Errors of the output side that will hit every later file too: stop the batch instead of failing each.
_FATAL_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.EPERM}


class OutputFatalError(OSError):
    """The output location cannot take more files (full, read-only, no permission): the batch stops."""


@dataclass(frozen=True)
class BatchItem:
    """One input file and the stem of its outputs (output directory / relative name without suffix)."""

    source: Path
    stem: Path


class NoInputsError(ValueError):
    """The inputs hold no file to convert at all (an empty folder, a ``pattern`` matching nothing): a
    mistake to say, not a batch that succeeded at nothing."""


@dataclass
class BatchSummary:
    """What a batch did; ``problems`` are inputs left out before it started (missing, unsafe names)."""

    converted: list = field(default_factory=list)  # ConvertResult
    skipped: list[BatchItem] = field(default_factory=list)
    failed: list[tuple[BatchItem, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. files left to another run writing them


def _matches(path: Path, pattern: str | None) -> bool:
    if TEMP_PATTERN.fullmatch(path.name):
        return False  # a temporary of hsrecon's (another run's, or a killed one's) is never an input
    if pattern is not None:
        return fnmatch.fnmatch(path.name, pattern)
    return path.suffix.lower() in IMAGE_SUFFIXES


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _walk(
    root: Path, recursive: bool, skip: tuple[int, int] | None = None, problems: list[str] | None = None
) -> Iterator[Path]:
    """Files under ``root``, sorted; symlinked folders are not followed (no loops, no escapes), and the
    folder ``skip`` identifies (the output folder, inside an input folder) is not entered. A folder that
    cannot be listed is one line in ``problems`` (its files would otherwise vanish from the batch unsaid)."""

    def unreadable(error: OSError) -> None:
        if problems is not None:
            reason = error.strerror or str(error)
            problems.append(f"{error.filename}: cannot list this folder ({reason}); its files are left out")

    for folder, dirs, files in os.walk(root, followlinks=False, onerror=unreadable):
        dirs[:] = sorted(name for name in dirs if skip is None or _identity(Path(folder) / name) != skip)
        for name in sorted(files):
            yield Path(folder) / name
        if not recursive:
            return


def collect_inputs(
    paths: Sequence[Path], *, recursive: bool = False, pattern: str | None = None, output_dir: Path | None = None
) -> tuple[list[tuple[Path, Path | None]], list[str]]:
    """Expand files and folders into (file, folder it was found in or None); plus one line per problem.

    hsrecon's temporaries are never inputs, and with ``output_dir`` given, a recursive walk does not enter
    the output folder (its files are this tool's outputs). See also :func:`plan_outputs`.
    """
    found: list[tuple[Path, Path | None]] = []
    problems: list[str] = []
    skip = _identity(output_dir) if output_dir is not None else None
    for path in paths:
        if path.is_dir():
            found.extend((file, path) for file in _walk(path, recursive, skip, problems) if _matches(file, pattern))
        elif path.is_file():
            found.append((path, None))
        elif os.path.lexists(path):
            kind = "broken or looping symbolic link" if path.is_symlink() else "not a regular file or folder"
            problems.append(f"{path}: {kind}")
        else:
            problems.append(f"{path}: no such file or directory")
    return found, problems


def _output_name(file_name: str) -> str:
    """The output name for an input file name: its stem, never empty, ``.`` or ``..``.

    ``..png`` has the stem ``.`` and ``...png`` the stem ``..``: used as names they would put the
    outputs beside or above the output folder, so a stem of dots only becomes underscores.
    """
    stem = Path(file_name).stem
    return stem if stem.strip(".") else "_" * max(len(stem), 1)


def _relative_stem(file: Path, root: Path | None) -> Path:
    relative = Path(file.name) if root is None else file.relative_to(root)
    return relative.with_name(_output_name(relative.name))


def _unique_stems(inputs: Sequence[tuple[Path, Path | None]], stems: list[Path]) -> list[Path]:
    """Stems shared by several inputs get the input's suffix (``a_png``, ``a_jpg``); any that still
    collide (``a.png`` next to ``a_png.png``, or ``a.PNG``) get ``_2``, ``_3``, ... in input order."""
    counts: dict[Path, int] = {}
    for stem in stems:
        counts[stem] = counts.get(stem, 0) + 1
    taken: set[Path] = set()
    unique = []
    for (file, _), stem in zip(inputs, stems, strict=True):
        if counts[stem] > 1:
            stem = stem.with_name(f"{stem.name}_{file.suffix.lstrip('.').lower()}")
        candidate, number = stem, 2
        while candidate in taken:
            candidate, number = stem.with_name(f"{stem.name}_{number}"), number + 1
        taken.add(candidate)
        unique.append(candidate)
    return unique


def _inside(target: Path, output_dir: Path) -> bool:
    """Whether ``target``'s outputs land inside ``output_dir``, symlinked sub-folders resolved."""
    return target.name not in ("", ".", "..") and target.resolve().is_relative_to(output_dir.resolve())


def _own_outputs(inputs: Sequence[tuple[Path, Path | None]], output_dir: Path) -> list[int]:
    """Indices of inputs that are outputs of other inputs of the same run (``a.preview.png`` beside
    ``a.png`` when the output folder is the input folder): converting them would make outputs of outputs."""
    out = Path(os.path.realpath(output_dir))
    inside = {}
    for index, (file, _) in enumerate(inputs):
        real = Path(os.path.realpath(file))  # never raises, even for a link that loops
        if real.is_relative_to(out):
            inside[real] = index
    if not inside:
        return []
    stems = _unique_stems(inputs, [_relative_stem(file, root) for file, root in inputs])
    own = set()
    for index, stem in enumerate(stems):
        for path in _all_outputs(BatchItem(inputs[index][0], out / stem)):
            other = inside.get(path)
            if other is not None and other != index:
                own.add(other)
    return sorted(own)


def plan_outputs(
    inputs: Sequence[tuple[Path, Path | None]],
    output_dir: Path,
    problems: list[str] | None = None,
    notes: list[str] | None = None,
) -> list[BatchItem]:
    """Output stems inside ``output_dir``: the input's path relative to its folder, minus the suffix.

    Two inputs that would share a stem (``a.png`` and ``a.jpg``) both keep their suffix in the name
    (``a_png``, ``a_jpg``). Names come from relative paths inside the input folder, so no input name can
    place an output outside ``output_dir``; an item that would anyway (a symlinked sub-folder of the
    output folder pointing elsewhere, a hand-made path with ``..``) raises ``ValueError``, or, when
    ``problems`` is given, is left out and described there in one line.

    An input that is another input's output (``a.preview.png`` from an earlier ``--preview`` run into the
    input folder) is left out, and said in one line in ``notes``: a rerun never converts its own outputs.
    """
    own = _own_outputs(inputs, output_dir)
    if own:
        if notes is not None:
            example = inputs[own[0]][0].name
            notes.append(f"{len(own)} of the inputs are outputs of the others (e.g. {example}): not converted")
        dropped = set(own)
        inputs = [entry for index, entry in enumerate(inputs) if index not in dropped]
    stems = _unique_stems(inputs, [_relative_stem(file, root) for file, root in inputs])
    items = []
    for (file, _), stem in zip(inputs, stems, strict=True):
        target = output_dir / stem
        if not _inside(target, output_dir):
            message = f"{file}: output name would leave the output directory"
            if problems is None:
                raise ValueError(message)
            problems.append(message)
            continue
        items.append(BatchItem(file, target))
    return items


def shard(items: Sequence[BatchItem], index: int, count: int) -> list[BatchItem]:
    """The ``index``-th of ``count`` interleaved shares of the work (index from 0)."""
    if not 0 <= index < count:
        raise ValueError(f"shard {index + 1}/{count} does not exist")
    return list(items[index::count])


_TORCHRUN_VARIABLES = ("TORCHELASTIC_RUN_ID", "LOCAL_RANK", "GROUP_RANK", "LOCAL_WORLD_SIZE")


def _whole(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} in the environment: expected a whole number") from None


def torchrun_shard(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(index, count) of this process's share from ``RANK``/``WORLD_SIZE`` (torchrun sets them); (0, 1)
    when neither is set. ValueError, one line, for values that cannot be a share: not whole numbers, one
    without the other, or ``RANK`` outside 0 … ``WORLD_SIZE`` − 1 (and a ``LOCAL_RANK`` that is no number).
    """
    environ = os.environ if environ is None else environ
    rank, world = environ.get("RANK"), environ.get("WORLD_SIZE")
    if "LOCAL_RANK" in environ and _whole("LOCAL_RANK", environ["LOCAL_RANK"]) < 0:
        raise ValueError(f"LOCAL_RANK={environ['LOCAL_RANK']} in the environment: must be 0 or more")
    if rank is None and world is None:
        return 0, 1
    if rank is None or world is None:
        given, missing = ("RANK", "WORLD_SIZE") if world is None else ("WORLD_SIZE", "RANK")
        raise ValueError(f"{given} is set in the environment but {missing} is not: set both (torchrun does) or neither")
    index, count = _whole("RANK", rank), _whole("WORLD_SIZE", world)
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"RANK={index}, WORLD_SIZE={count} in the environment: RANK must be from 0 to WORLD_SIZE - 1")
    return index, count


def under_torchrun(environ: Mapping[str, str] | None = None) -> bool:
    """Whether torchrun started this process (it sets ``LOCAL_RANK`` and ``TORCHELASTIC_RUN_ID`` besides
    ``RANK``/``WORLD_SIZE``): otherwise a share taken from the environment is a leftover worth saying."""
    environ = os.environ if environ is None else environ
    return any(name in environ for name in _TORCHRUN_VARIABLES)


def _read(item: BatchItem) -> RGBImage | Exception:
    try:
        return read_rgb(item.source)
    except Exception as error:
        return error


def pending_formats(stem: Path, formats: Sequence[str], overwrite: bool = False) -> list[str]:
    """The formats still to write for ``stem``: all with ``overwrite``, else those not complete.

    A run killed between two formats of one file left some complete: a rerun writes only the others
    instead of refusing the finished ones as existing.
    """
    unique = list(dict.fromkeys(formats))  # a format asked for twice is written once
    return unique if overwrite else [fmt for fmt in unique if not is_complete(stem, fmt)]


def _is_done(item: BatchItem, formats: Sequence[str], preview: bool) -> bool:
    if pending_formats(item.stem, formats):
        return False
    return not preview or preview_path(item.stem).is_file()


def _all_outputs(item: BatchItem) -> list[Path]:
    """Every file hsrecon could write for ``item``, in any format, and its preview."""
    return [*(path for fmt in FORMATS for path in output_files(item.stem, fmt)), preview_path(item.stem)]


def _remove_stale_temps(items: Sequence[BatchItem]) -> None:
    """Delete what killed runs left for these files' outputs (a killed process cannot clean up after
    itself), in every format: the killed run may have been asked for other formats than this one."""
    remove_stale_temps([path for item in items for path in _all_outputs(item)])


def run_batch(
    items: Sequence[BatchItem],
    convert: Callable[[BatchItem, RGBImage], object],
    *,
    formats: Sequence[str],
    overwrite: bool = False,
    preview: bool = False,
    fatal: tuple[type[BaseException], ...] = (),
    on_start: Callable[[BatchItem, RGBImage], None] | None = None,
    on_done: Callable[[BatchItem, object], None] | None = None,
    on_skip: Callable[[BatchItem], None] | None = None,
    on_fail: Callable[[BatchItem, str], None] | None = None,
    on_note: Callable[[BatchItem, str], None] | None = None,
) -> BatchSummary:
    """Convert each item with ``convert(item, image)``, reading the next image in the background.

    Failures of one input are recorded as one line and the batch goes on; an output location that is
    full or read-only raises :class:`OutputFatalError`, since every later file would fail the same way,
    and so does any exception of a type in ``fatal`` (e.g. the device out of memory). Without
    ``overwrite``, items whose outputs (and preview, with ``preview``) are all complete are skipped.

    Another run writing into the same folder: a file whose temporaries it holds is left to it, and a
    file it finishes while this run writes it is kept as it wrote it; both count as skipped, with a
    note (``on_note``, :attr:`BatchSummary.notes`), not as failures.
    """
    _remove_stale_temps(items)
    summary = BatchSummary()
    todo = []
    for item in items:
        if not overwrite and _is_done(item, formats, preview):
            summary.skipped.append(item)
            if on_skip:
                on_skip(item)
        else:
            todo.append(item)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hsrecon-read") as reader:
        upcoming: Future | None = reader.submit(_read, todo[0]) if todo else None
        for index, item in enumerate(todo):
            image = upcoming.result()
            upcoming = reader.submit(_read, todo[index + 1]) if index + 1 < len(todo) else None
            busy = live_temps(_all_outputs(item))
            if busy:
                _record_skip(item, f"{item.source}: being written by another run ({busy[0].name}); left to it",
                             summary, on_skip, on_note)  # fmt: skip
                continue
            _convert_one(item, image, convert, summary, fatal, (on_start, on_done, on_fail, on_skip, on_note))
    return summary


def _record_skip(item: BatchItem, note: str, summary: BatchSummary, on_skip, on_note) -> None:
    summary.skipped.append(item)
    summary.notes.append(note)
    if on_note:
        on_note(item, note)
    if on_skip:
        on_skip(item)


def _convert_one(item, image, convert, summary, fatal, callbacks) -> None:
    on_start, on_done, on_fail, on_skip, on_note = callbacks
    try:
        if isinstance(image, Exception):
            raise image
        if on_start:
            on_start(item, image)
        item.stem.parent.mkdir(parents=True, exist_ok=True)
        result = convert(item, image)
    except fatal:
        raise
    except ImageReadError as error:
        _record_failure(item, str(error), summary, on_fail)
    except ConcurrentOutputError as error:
        _record_skip(item, f"{item.source}: {error}", summary, on_skip, on_note)
    except OutputExistsError as error:
        if _finished_meanwhile(item, error.path):
            note = f"{item.source}: {error.path.name} was finished meanwhile by another run; left as it is"
            _record_skip(item, note, summary, on_skip, on_note)
        else:
            message = f"{error.path}: exists but is not a complete output; remove it, or pass --overwrite to replace it"
            _record_failure(item, message, summary, on_fail)
    except OSError as error:
        if error.errno in _FATAL_ERRNOS:
            raise OutputFatalError(error.errno, _fatal_message(item, error)) from error
        _record_failure(item, f"{item.source}: {error}", summary, on_fail)
    except (ValueError, RuntimeError) as error:
        _record_failure(item, f"{item.source}: {error}", summary, on_fail)
    else:
        summary.converted.append(result)
        if on_done:
            on_done(item, result)


def _finished_meanwhile(item: BatchItem, path: Path) -> bool:
    """Whether ``path``, absent or incomplete when this run chose the formats to write and present when its
    writer opened, is now a complete output: another run into the same folder finished it meanwhile."""
    return any(path in output_files(item.stem, fmt) and is_complete(item.stem, fmt) for fmt in FORMATS)


def _fatal_message(item: BatchItem, error: OSError) -> str:
    """One line naming the output (a CubeWriteError's message already does) and saying the batch stops."""
    where = str(error) if isinstance(error, CubeWriteError) else f"{item.stem.parent}: {error.strerror or error}"
    return f"{where}; stopping, every later output would fail the same way"


def _record_failure(item: BatchItem, message: str, summary: BatchSummary, on_fail) -> None:
    summary.failed.append((item, message))
    if on_fail:
        on_fail(item, message)


# --- hsrecon convert as one call ------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvertSettings:
    """How every file of a batch is converted (:func:`hsrecon.pipeline.convert_file`'s arguments, and
    the predictor's). ``window``/``stride``/``pad`` None: the weights' own (:meth:`Weights.windowing`)."""

    formats: tuple[str, ...] = ("envi",)
    input_space: str | None = None
    exposure: float | None = None
    window: int | None = None
    stride: int | None = None
    pad: int | None = None
    batch_size: int | None = None  # None: the windowing's (hsrecon.windows.Windowing.batch_size)
    precision: str = "fp32"
    tta: bool = False
    dtype: str = "float32"
    interleave: str = "bsq"
    overwrite: bool = False
    preview: bool = False
    plausible: bool = False  # project every spectrum onto those rendering exactly to its pixel


class BatchEvents:
    """What :func:`convert_batch` tells its caller as it goes. Every method does nothing here; a front
    end (the CLI's progress bars) overrides those it shows."""

    def warning(self, text: str) -> None:
        """Something about the whole run the user should know (said once, before any work)."""

    def problem(self, text: str) -> None:
        """An input left out before the batch starts; it counts as failed."""

    def started(self, items: Sequence[BatchItem]) -> None:
        """The batch begins with these items (after sharding)."""

    def file_started(self, item: BatchItem, windows: int) -> None:
        """``item`` was read and is being converted in ``windows`` windows."""

    def windows_done(self, count: int) -> None:
        """``count`` more windows of the current file went through the network."""

    def note(self, text: str) -> None:
        """What was done to an input or to the run (a converted image mode, a halved batch)."""

    def file_done(self, item: BatchItem, result: ConvertResult) -> None: ...

    def file_skipped(self, item: BatchItem) -> None:
        """``item``'s outputs are all complete already."""

    def file_failed(self, item: BatchItem, message: str) -> None:
        """``item`` failed (one line naming it); the batch goes on."""


def convert_batch(
    inputs: Sequence[Path],
    output: Path,
    *,
    weights: Weights,
    device: str | torch.device = "cpu",
    settings: ConvertSettings = ConvertSettings(),
    recursive: bool = False,
    pattern: str | None = None,
    shard_of: tuple[int, int] | None = None,
    events: BatchEvents | None = None,
) -> BatchSummary:
    """Convert image files and folders of images into ``output``, with ``weights`` on ``device``.

    ``shard_of`` (index from 0, count) does one interleaved share of the files (default: torchrun's, or
    all); under torchrun each local rank takes its own GPU. Raises :class:`OutputFatalError` when the
    output folder cannot be created or takes no more files, and
    :class:`~hsrecon.inference.DeviceOutOfMemoryError` when one window does not fit on the device: every
    later file would fail the same way. Any other failure is one file's, told to ``events``.
    """
    events = events or BatchEvents()
    windowing = weights.windowing(settings.window, settings.stride, settings.pad)
    if settings.plausible:
        check_weights_space(weights.input_space, weights.name)  # ValueError before any work
    space, warning = weights.feed_space(settings.input_space)
    if warning:
        events.warning(f"{weights.path.name if weights.path else weights.name}: {warning}")
    photo_warning = _PhotoWarning(events) if _reads_as_clean(weights, space, settings.input_space) else None
    found, problems = collect_inputs(inputs, recursive=recursive, pattern=pattern, output_dir=output)
    if not found and not problems:  # said before the output folder is made, so none is left behind
        matching = f" matching {pattern!r}" if pattern is not None else ""
        raise NoInputsError(f"{', '.join(map(str, inputs))}: no image file{matching} to convert")
    _make_output_folder(output)
    notes: list[str] = []
    items = shard(plan_outputs(found, output, problems, notes), *(shard_of or torchrun_shard()))
    for problem in problems:
        events.problem(problem)
    for note in notes:
        events.note(note)
    predict = weights.predictor(
        device=rank_device(torch.device(device)), precision=settings.precision, tta=settings.tta,
        window=windowing.window, on_note=events.note,
    )  # fmt: skip

    def convert(item: BatchItem, image: RGBImage) -> ConvertResult:
        return convert_file(
            item.source, item.stem, weights=weights, predict=predict,
            formats=pending_formats(item.stem, settings.formats, settings.overwrite), input_space=settings.input_space,
            exposure=settings.exposure, window=windowing.window, stride=windowing.stride, pad=settings.pad,
            batch_size=settings.batch_size,
            dtype=settings.dtype, interleave=settings.interleave, overwrite=settings.overwrite,
            preview=settings.preview, image=image, on_windows=events.windows_done, plausible=settings.plausible,
        )  # fmt: skip

    def on_start(item: BatchItem, image: RGBImage) -> None:
        height, width = image.pixels.shape[:2]
        if photo_warning is not None:
            photo_warning(item, image)
        events.file_started(item, count_windows(height, width, windowing))
        for note in image.notes:
            events.note(f"{item.source}: {note}")

    events.started(items)
    summary = run_batch(
        items, convert, formats=settings.formats, overwrite=settings.overwrite, preview=settings.preview,
        fatal=(DeviceOutOfMemoryError,), on_start=on_start, on_done=events.file_done, on_skip=events.file_skipped,
        on_fail=events.file_failed, on_note=lambda item, text: events.note(text),
    )  # fmt: skip
    summary.problems[:0] = problems
    return summary


def _reads_as_clean(weights: Weights, space: str, requested: str | None) -> bool:
    """Whether files are fed to clean-space weights as clean renderings (no ``--input-space`` other than
    ntire2020-clean was asked for): then a photo among them is misread."""
    clean_weights = canonical_space(weights.input_space) == "ntire2020-clean"
    return clean_weights and space == "ntire2020-clean" and (requested is None or canonical_space(requested) == space)


@dataclass
class _PhotoWarning:
    """Says once per batch that an input looks like an ordinary photo (:func:`hsrecon.inputs.photo_evidence`)
    while the weights read it as a clean-track rendering."""

    events: BatchEvents
    said: bool = False

    def __call__(self, item: BatchItem, image: RGBImage) -> None:
        if self.said:
            return
        reason = photo_evidence(image)
        if reason is not None:
            self.said = True
            self.events.warning(
                f"{item.source} looks like an ordinary photo ({reason}), but these weights read it as an NTIRE "
                "clean-track rendering (linear, not white balanced): give --input-space srgb, or weights "
                "trained on photos (docs/input-spaces.md); said once, for the first such file"
            )


def _make_output_folder(output: Path) -> None:
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        message = f"{output}: cannot create the output folder ({error.strerror or error})"
        raise OutputFatalError(error.errno or errno.EIO, message) from None
