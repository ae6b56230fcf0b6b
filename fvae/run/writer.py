"""One writer for a run's per-epoch metrics: JSON lines, TensorBoard and the console,
on process 0 only.

Built on `clu.metric_writers`: its MultiWriter fans each write out, its SummaryWriter
writes the TensorBoard event files, and the two writers below implement its
MetricWriter interface for metrics.jsonl and the console line. Writes are synchronous:
an epoch's line is on disk (fsync) before the next epoch starts.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from clu import metric_writers

from fvae.errors import is_disk_full, library_output_kept
from fvae.run import rundir

Scalars = Mapping[str, float]


class _ScalarsOnly(metric_writers.MetricWriter):
    """A MetricWriter for scalars: other kinds of values (images, texts, ...) are not its
    business and are ignored (fvae saves its pictures as PNG files)."""

    def write_summaries(self, step: int, values: Mapping[str, Any], metadata: Mapping[str, Any] | None = None):
        pass

    def write_images(self, step: int, images: Mapping[str, Any]):
        pass

    def write_videos(self, step: int, videos: Mapping[str, Any]):
        pass

    def write_audios(self, step: int, audios: Mapping[str, Any], *, sample_rate: int):
        pass

    def write_texts(self, step: int, texts: Mapping[str, str]):
        pass

    def write_histograms(self, step: int, arrays: Mapping[str, Any], num_buckets: Mapping[str, int] | None = None):
        pass

    def write_hparams(self, hparams: Mapping[str, Any]):
        pass

    def flush(self):
        pass

    def close(self):
        pass


class JsonLinesWriter(_ScalarsOnly):
    """Appends {"epoch": step, **scalars} to <workdir>/metrics.jsonl, one fsynced line per write."""

    def __init__(self, workdir: str | Path):
        self.workdir = Path(workdir)

    def write_scalars(self, step: int, scalars: Scalars):
        rundir.append_metrics(self.workdir, {"epoch": step, **scalars})


class ConsoleWriter(_ScalarsOnly):
    """Passes `format_line(step, scalars)` to `log` (print, or a test's list.append)."""

    def __init__(self, log: Callable[[str], None], format_line: Callable[[int, Scalars], str]):
        self.log, self.format_line = log, format_line

    def write_scalars(self, step: int, scalars: Scalars):
        self.log(self.format_line(step, scalars))


def create_writer(workdir: str | Path, log: Callable[[str], None], format_line: Callable[[int, Scalars], str],
                  is_writer: bool = True) -> metric_writers.MultiWriter:
    """Where a run's per-epoch scalars go: metrics.jsonl, TensorBoard event files in
    <workdir>/tensorboard (`tensorboard --logdir runs` shows every run) and one console
    line. Processes other than 0 (is_writer False) get a writer that writes nothing."""
    if not is_writer:
        return metric_writers.MultiWriter([])
    return metric_writers.MultiWriter([
        JsonLinesWriter(workdir),
        _tensorboard_writer(Path(workdir) / "tensorboard"),
        ConsoleWriter(log, format_line),
    ])


def _tensorboard_writer(folder: Path) -> metric_writers.SummaryWriter:
    """The TensorBoard writer; a disk too full for its event file is the OSError that names it
    (TensorFlow raises its own type), with TensorFlow's traceback kept for the log."""
    try:
        with library_output_kept(Exception):
            return metric_writers.SummaryWriter(str(folder))
    except Exception as err:
        if not is_disk_full(err):
            raise
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "events.out.tfevents.*")) from err
