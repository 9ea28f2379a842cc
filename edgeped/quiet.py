"""Keeps TensorFlow, absl, converter and LiteRT chatter out of what a person reads.

TensorFlow's C++ side logs through absl before anything can configure it ("All log
messages before absl::InitializeLog() ..." and the `cudart_stub` line on every import
on a CPU host); the TFLite converter prints `fully_quantize: 0, ...` and LiteRT prints
"Created TensorFlow Lite XNNPACK delegate" straight to file descriptor 2. Environment
variables do not silence those, so the command line installs a filter on descriptor 2
(a pipe read by a thread that drops the known noise lines and forwards everything
else unchanged), while Python's own `sys.stderr` keeps writing to the terminal
directly, so progress bars stay live. `edgeped -v` turns all of this off.

Python-side chatter (tf_keras' "Compiled the loaded model, but the compiled metrics
have yet to be built", absl warnings) is lowered with the logging levels of the
`tensorflow` and `absl` loggers once TensorFlow is loaded (see `edgeped._keras`).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import re
import sys
import threading

VERBOSE_ENV = "EDGEPED_VERBOSE"

# One pattern per known kind of library noise; each matches a whole line. A line that
# matches none is forwarded: an unknown message is never swallowed.
NOISE_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
        r"^[IW]\d{4} [\d:.]+\s+\d+ cudart_stub\.cc:\d+\]",
        r"^[IW]\d{4} [\d:.]+\s+\d+ cuda_(executor|dnn|fft|blas|diagnostics)\.cc:\d+\]",
        r"^[IW]\d{4} [\d:.]+\s+\d+ cpu_feature_guard\.cc:\d+\]",
        # An error-level line, but on a host without a GPU it only says there is none.
        r"^E\d{4} [\d:.]+\s+\d+ cuda_platform\.cc:\d+\] failed call to cuInit: ",
        r"^To enable the following instructions: .* in other operations, rebuild TensorFlow",
        r"^[IW]\d{4} [\d:.]+\s+\d+ port\.cc:\d+\] oneDNN custom operations are on",
        r"^[IW]\d{4} [\d:.]+\s+\d+ (tf_tfl_flatbuffer_helpers|flatbuffer_export|"
        r"tf_saved_model_freeze_variables|lower_cluster_to_runtime_ops|"
        r"mlir_graph_optimization_pass|saver|loader|reader)\.cc:\d+\]",
        r"^[IW]\d{4} [\d:.]+\s+\d+ (devices|gpu_device|gpu_timer|service)\.cc:\d+\]",
        r"^fully_quantize: \d+, inference_type: \d+, input_inference_type: \S+, "
        r"output_inference_type: \S+$",
        r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$",
        r"^INFO: Initialized TensorFlow Lite runtime\.$",
        r"^WARNING:absl:Compiled the loaded model, but the compiled metrics have yet to be built",
        r"^WARNING:tensorflow:Compiled the loaded model, but the compiled metrics",
        r"^WARNING:absl:Skipping variable loading for optimizer",
        r"^WARNING:absl:Importing a function \(.*\) with ops with unsaved custom gradients",
        r"^\s*warnings\.warn\('`tf\.lite\.Interpreter` is deprecated",
    )
)


def is_noise(line: str) -> bool:
    """True when ``line`` is a known library message that tells a user nothing."""
    text = line.rstrip("\r\n")
    return any(p.search(text) for p in NOISE_PATTERNS)


def verbose() -> bool:
    """Whether the user asked for the libraries' own logs (`edgeped -v`)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def configure_environment(*, verbose_logs: bool | None = None) -> None:
    """Sets the environment TensorFlow reads at import time; call before it loads.

    Args:
        verbose_logs: keep the libraries' own logging (default: `EDGEPED_VERBOSE`).
    """
    if verbose() if verbose_logs is None else verbose_logs:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def quiet_python_loggers() -> None:
    """Lowers TensorFlow's and absl's Python loggers to errors (after TensorFlow loaded)."""
    if verbose():
        return
    import logging

    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl comes with TensorFlow; without it there is nothing to lower
        pass


class _Filter:
    """Descriptor 2 -> pipe -> thread -> the real stderr, dropping noise lines."""

    def __init__(self) -> None:
        self.real = os.dup(2)
        read_end, write_end = os.pipe()
        self.read_end = read_end
        os.dup2(write_end, 2)
        os.close(write_end)
        self.dropped = 0
        self.python_stderr = None
        self.wrapper = None
        self.thread = threading.Thread(target=self._pump, name="edgeped-stderr", daemon=True)
        self.thread.start()

    def _forward(self, data: bytes) -> None:
        while data:
            written = os.write(self.real, data)
            data = data[written:]

    def _pump(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self.read_end, 65536)
            except OSError:
                break
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            keep = []
            for line in lines:
                if is_noise(line.decode("utf-8", "replace")):
                    self.dropped += 1
                else:
                    keep.append(line + b"\n")
            if keep:
                self._forward(b"".join(keep))
        if pending and not is_noise(pending.decode("utf-8", "replace")):
            self._forward(pending)
        os.close(self.read_end)

    def close(self) -> None:
        """Restores descriptor 2 and forwards whatever is still in the pipe."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os.dup2(self.real, 2)  # closes the pipe's write end held by descriptor 2
        self.thread.join(timeout=2.0)


_active: _Filter | None = None


def install_stderr_filter() -> bool:
    """Filters library noise out of descriptor 2 for the rest of the process.

    Python's ``sys.stderr`` is pointed at the real terminal so rich progress bars and
    error messages are not delayed by the filter. Does nothing (returns False) when
    verbose, already installed, or when stderr is not a real file (e.g. under click's
    test runner or pytest's capture).

    Returns:
        Whether the filter is now installed.
    """
    global _active
    if _active is not None or verbose():
        return _active is not None
    try:
        if sys.stderr.fileno() != 2:
            return False
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False
    sys.stderr.flush()
    _active = _Filter()
    _active.python_stderr = sys.stderr
    sys.stderr = _active.wrapper = io.TextIOWrapper(
        os.fdopen(os.dup(_active.real), "wb", buffering=0),
        encoding=sys.stderr.encoding or "utf-8",
        errors="backslashreplace",
        # Line-buffered, not write-through: print() writes text and "\n" separately, and
        # a native line forwarded in between would be spliced into the middle.
        line_buffering=True,
    )
    atexit.register(remove_stderr_filter)
    return True


def remove_stderr_filter() -> int:
    """Removes the filter (idempotent); returns how many noise lines it dropped."""
    global _active
    if _active is None:
        return 0
    active, _active = _active, None
    active.close()
    if sys.stderr is active.wrapper:
        sys.stderr = active.python_stderr
        active.wrapper.close()
    return active.dropped


@contextlib.contextmanager
def filtered_stderr():
    """Filters descriptor 2 inside the block unless a filter is already installed.

    For library use: `edgeped._keras` wraps the TensorFlow import in it, so a script
    that never touches the command line does not print the CUDA probing lines either.
    """
    mine = _active is None and install_stderr_filter()
    try:
        yield
    finally:
        if mine:
            remove_stderr_filter()


__all__ = [
    "NOISE_PATTERNS",
    "configure_environment",
    "filtered_stderr",
    "install_stderr_filter",
    "is_noise",
    "quiet_python_loggers",
    "remove_stderr_filter",
    "verbose",
]
