"""A model served from a process of its own, so inference never waits for the worker's interpreter lock.

Why: in the worker, the inference thread shares the GIL with Faust's two event loops. onnxruntime
releases it while the graph runs, but tokenizing, padding and reading the outputs hold it, and every
release costs a wait to take it back from a busy loop: a one-text call took 18.6 ms inside the worker
against 5 ms alone (``bench/RESULTS.md``, issue 13). In a child process the model's Python runs beside
the loops, not between them.

The child is ``python -m streamnlp.model.isolated``, spoken to over its stdin and stdout with pickled
requests (a plain subprocess, not multiprocessing: that would re-import the worker's main module in the
child). It loads and checks the directory itself (the same
:func:`~streamnlp.model.check.load_checked` as in-process) and must find the version the parent was
told about. The parent keeps what the labeller asks of a model without running it (name, version,
heads, tokens read) and never imports onnxruntime or tokenizers (about 34 MiB of the worker's RSS);
``predict`` sends the texts and blocks until the labels come back, in the labeller's inference thread,
never on the event loop.

A child that dies (killed, out of memory, a crash inside onnxruntime) is started again and the call
tried once more; if it dies again the call fails with :class:`ModelError`, so the labeller goes text by
text and a text that kills the model reaches the dead-letter topic alone. A child reads end-of-file when
its parent is gone, however it went, and exits.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from streamnlp._errors import ModelError
from streamnlp.model.labels import Labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Spec:
    path: str
    profiles: Mapping[str, tuple[str, ...]]
    threads: int
    version: str | None  # the version the child must find; None on the first load


@dataclass(frozen=True)
class _Info:
    name: str
    version: str
    heads: Mapping[str, tuple[str, ...]]
    tokens: Mapping[str, int]  # the most tokens each head reads of a text


class _ChildDied(Exception):
    pass


class _Child:
    """One running ``python -m streamnlp.model.isolated`` and the two ends of its pipes."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._send = Connection(os.dup(self.process.stdin.fileno()), readable=False)
        self._recv = Connection(os.dup(self.process.stdout.fileno()), writable=False)
        self.process.stdin.close()
        self.process.stdout.close()

    def call(self, request: tuple[Any, ...]) -> Any:
        """The child's answer to ``request``; an exception the child raised is raised here."""
        try:
            self._send.send(request)
            ok, value = self._recv.recv()
        except (EOFError, OSError) as exc:
            raise _ChildDied(str(exc) or type(exc).__name__) from exc
        if not ok:
            raise value
        return value

    def stop(self) -> None:
        for conn in (self._send, self._recv):
            conn.close()  # the child reads end-of-file and exits
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ProcessModel:
    """A checked model directory running in a child process (see the module docstring)."""

    def __init__(self, spec: _Spec, child: _Child, info: _Info) -> None:
        self._spec = spec
        self._child: _Child | None = child
        self._lock = threading.Lock()  # one call at a time on the pipes
        self.name = info.name
        self.version = info.version
        self.heads: Mapping[str, Sequence[str]] = info.heads
        self._tokens = dict(info.tokens)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], profiles: Mapping[str, Sequence[str]], *, threads: int = 1
    ) -> ProcessModel:
        """Start a child, load and check ``path`` there; :class:`ModelError` says what is wrong with it.
        Blocking (a process start and a model load): call it off the event loop."""
        spec = _Spec(str(path), {p: tuple(h) for p, h in profiles.items()}, threads, None)
        child, info = _start(spec)
        return cls(_Spec(spec.path, spec.profiles, threads, info.version), child, info)

    @property
    def pid(self) -> int | None:
        """The child's process id (for tests and logs); None once closed."""
        return self._child.process.pid if self._child is not None else None

    def tokens_read(self, heads: Sequence[str]) -> int:
        """The most tokens these heads read of a text (what a caller may cut a text to beforehand)."""
        return max(self._tokens[h] for h in heads) if heads else max(self._tokens.values())

    def predict(self, texts: Sequence[str], heads: Sequence[str] | None = None) -> list[Labels]:
        """Labels from the child; raises only :class:`ModelError` (see the module docstring)."""
        request = ("predict", list(texts), None if heads is None else list(heads))
        with self._lock:
            for attempt in (1, 2):
                if self._child is None:
                    raise ModelError(f"model {self.name} {self.version} is closed")
                try:
                    return self._child.call(request)  # type: ignore[no-any-return]
                except _ChildDied as exc:
                    log.error(
                        "the model process of %s %s died (%s; attempt %d of 2); starting another",
                        self.name,
                        self.version,
                        exc,
                        attempt,
                    )
                    self._restart()
            raise ModelError(f"the model process died twice on one call of {len(texts)} text(s)")

    def close(self) -> None:
        """Stop the child: this version no longer serves."""
        with self._lock:
            if self._child is not None:
                self._child.stop()
                self._child = None

    def _restart(self) -> None:
        assert self._child is not None
        self._child.stop()
        self._child, _ = _start(self._spec)


def _start(spec: _Spec) -> tuple[_Child, _Info]:
    """A child that has loaded and checked ``spec``; :class:`ModelError` (a child dying while it loads
    included) otherwise, with no child left running."""
    child = _Child()
    try:
        return child, child.call(("load", spec))
    except _ChildDied as exc:
        child.stop()
        raise ModelError(f"the model process for {spec.path} died while loading it ({exc})") from exc
    except BaseException:
        child.stop()
        raise


# --- in the child ------------------------------------------------------------------------------------


def _load(spec: _Spec) -> tuple[Any, _Info]:
    from streamnlp.model.check import load_checked

    model = load_checked(spec.path, spec.profiles, threads=spec.threads)
    if spec.version is not None and model.version != spec.version:
        raise ModelError(
            f"{spec.path} now holds version {model.version}, not {spec.version}: it changed on disk while"
            " that version was serving; the reloader picks the new one up"
        )
    info = _Info(
        model.name,
        model.version,
        {h: tuple(labels) for h, labels in model.heads.items()},
        {h: model.tokens_read([h]) for h in model.heads},
    )
    return model, info


def _serve() -> None:
    """The child's loop: requests from stdin, answers to stdout, until end-of-file."""
    import signal

    # Ctrl-C reaches the whole process group: the worker decides when its model stops, not the terminal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    recv = Connection(os.dup(0), writable=False)
    send = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # a stray print must not corrupt the answers
    model = None
    while True:
        try:
            request = recv.recv()
        except EOFError:
            return
        try:
            if request[0] == "load":
                model, info = _load(request[1])
                answer: tuple[bool, Any] = (True, info)
            elif model is None:
                answer = (False, ModelError("no model loaded in this process"))
            else:
                answer = (True, model.predict(request[1], request[2]))
        except Exception as exc:  # every failure goes back to the caller, who maps it
            answer = (
                False,
                exc if isinstance(exc, ModelError) else ModelError(f"{type(exc).__name__}: {exc}"),
            )
        send.send(answer)


if __name__ == "__main__":
    # Run the module's own copy, not this __main__ one: what the child pickles must name classes the
    # parent can find (streamnlp.model.isolated._Info, not __main__._Info).
    from streamnlp.model.isolated import _serve as serve

    serve()
