# SPDX-License-Identifier: GPL-3.0-or-later
"""The add-on's side of the worker protocol (``relight_core.worker``; ARCHITECTURE.md 5).

One worker serves the whole Blender session (:func:`get`), started on first use:

* **subprocess**: ``<python> -m relight_core.worker`` with the interpreter from the add-on
  preferences (or ``$RELIGHT_PYTHON``, for farms and tests); JSON lines on its stdin/stdout,
  its stderr kept as a short tail for error messages;
* **in-process**: when no interpreter is set and relight_core imports in Blender's own Python,
  the worker's own loop (``relight_core.worker.serve``) runs on a thread here, over in-memory
  lines: the same protocol, the same code.

The handshake (``hello``) is sent at start; requests may follow at once (the worker answers in
order), so nothing here blocks unless a caller waits. A request returns a :class:`Call`:
``poll()`` for modal operators (never blocks), ``wait()`` for background mode and the render
engine (blocks, with a progress callback and a cancel test). A worker that dies turns every
pending call into a :class:`WorkerError` carrying the end of its log. Reader threads are daemons
and :func:`stop` runs at exit, so no thread keeps Blender alive (BLENDER.md 3.3).
"""

import atexit
import collections
import importlib
import importlib.util
import itertools
import json
import os
import queue
import subprocess
import threading
import time

PROTOCOL = 1
HANDSHAKE_TIMEOUT_S = 180.0  # importing torch on a cold disk is slow
_ENV_PYTHON = "RELIGHT_PYTHON"


class WorkerError(RuntimeError):
    """The worker failed a request, or stopped; ``kind`` is the protocol's error kind."""

    def __init__(self, message, kind="worker", log_tail=""):
        super().__init__(message + (f"\nLast worker log lines:\n{log_tail}" if log_tail else ""))
        self.kind = kind
        self.summary = message


class Cancelled(WorkerError):
    """The request was cancelled."""


# ------------------------------------------------------------------------------------------
# which worker
# ------------------------------------------------------------------------------------------


def worker_python(context=None):
    """The worker interpreter: preferences, then ``$RELIGHT_PYTHON``; None means in-process.

    Raises WorkerError when neither is set and relight_core does not import here.
    """
    from . import preferences

    prefs = preferences.get(context)
    path = (prefs.python_path if prefs is not None else "") or os.environ.get(_ENV_PYTHON, "")
    if path:
        import bpy

        path = bpy.path.abspath(path)
        if not os.path.isfile(path):
            raise WorkerError(f"the Worker Python {path!r} does not exist; set it in Preferences > Add-ons > "
                              "Relight to the python of an environment where relight_core is installed")
        return path
    if importlib.util.find_spec("relight_core") is None:
        raise WorkerError("relight_core is not installed in Blender's Python: set Worker Python in Preferences > "
                          "Add-ons > Relight to the python of an environment where relight_core is installed "
                          "(e.g. /path/to/venv/bin/python)")
    return None


# ------------------------------------------------------------------------------------------
# transports: one for a subprocess, one for an in-process thread
# ------------------------------------------------------------------------------------------


class _Subprocess:
    def __init__(self, python, on_message, on_eof):
        self.description = python
        self.tail = collections.deque(maxlen=40)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            self.proc = subprocess.Popen([python, "-m", "relight_core.worker"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                                         env=env)
        except OSError as exc:
            raise WorkerError(f"cannot start the worker {python!r}: {exc}") from None
        self._on_message, self._on_eof = on_message, on_eof
        threading.Thread(target=self._read_stdout, name="relight-worker-out", daemon=True).start()
        threading.Thread(target=self._read_stderr, name="relight-worker-err", daemon=True).start()

    def _read_stdout(self):
        for line in self.proc.stdout:
            try:
                self._on_message(json.loads(line))
            except ValueError:
                self.tail.append(f"(not a protocol line) {line.rstrip()}")
        self.proc.wait()
        time.sleep(0.05)  # let the stderr reader catch the last lines
        self._on_eof(f"the worker stopped (exit code {self.proc.returncode})")

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.tail.append(line.rstrip())

    def send(self, message):
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):  # the pipe is closed: the worker is gone
            pass

    def alive(self):
        return self.proc.poll() is None

    def close(self, timeout=5.0):
        self.send({"id": None, "cmd": "shutdown"})
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _InProcess:
    def __init__(self, on_message, on_eof):
        self.description = "in-process (Blender's Python)"
        self.tail = collections.deque(maxlen=40)
        worker = importlib.import_module("relight_core.worker")  # only here: the add-on stays light
        self._lines = queue.Queue()
        self._on_message = on_message

        def run():
            try:
                worker.serve(iter(self._lines.get, None), lambda text: on_message(json.loads(text)))
            except Exception as exc:  # a bug in the loop itself
                self.tail.append(f"{type(exc).__name__}: {exc}")
            on_eof("the in-process worker stopped")

        self._thread = threading.Thread(target=run, name="relight-worker", daemon=True)
        self._thread.start()

    def send(self, message):
        self._lines.put(json.dumps(message))

    def alive(self):
        return self._thread.is_alive()

    def close(self, timeout=5.0):
        self._lines.put(json.dumps({"id": None, "cmd": "shutdown"}))
        self._lines.put(None)
        self._thread.join(timeout)


# ------------------------------------------------------------------------------------------
# calls and the backend
# ------------------------------------------------------------------------------------------


class Call:
    """One request in flight. ``done``/``total``/``message`` hold the latest progress."""

    def __init__(self, backend, request_id, cmd):
        self.backend, self.id, self.cmd = backend, request_id, cmd
        self.messages = queue.Queue()
        self.done, self.total, self.message = 0, 0, ""
        self.result = None
        self.error = None
        self.finished = False
        self._cancel_sent = False

    def cancel(self):
        """Ask the worker to stop this request (between frames)."""
        if not self._cancel_sent and not self.finished:
            self._cancel_sent = True
            self.backend.send("cancel", {"target": self.id})

    def _take(self, msg):
        kind = msg.get("type")
        if kind == "progress":
            self.done, self.total, self.message = msg.get("done", 0), msg.get("total", 0), msg.get("message", "")
        elif kind == "result":
            self.result, self.finished = msg.get("result"), True
        else:  # error, or the worker died
            self.finished = True
            text = msg.get("message") or "the worker failed"
            if msg.get("traceback"):
                text += "\n" + msg["traceback"]
            cls = Cancelled if msg.get("kind") == "cancelled" else WorkerError
            self.error = cls(f"Relight {self.cmd}: {text}", msg.get("kind", "worker"), msg.get("log_tail", ""))
        return kind

    def poll(self):
        """Handle the messages that arrived; True once finished (then ``result`` or ``error``)."""
        while not self.finished:
            try:
                self._take(self.messages.get_nowait())
            except queue.Empty:
                break
        return self.finished

    def wait(self, progress=None, should_cancel=None, interval=0.1):
        """Block until the request ends; returns its result or raises WorkerError / Cancelled.

        progress(done, total, message) is called on every progress message; should_cancel() is
        polled every ``interval`` seconds and cancels the request once it returns True.
        """
        while not self.finished:
            try:
                kind = self._take(self.messages.get(timeout=interval))
            except queue.Empty:
                kind = None
            if kind == "progress" and progress is not None:
                progress(self.done, self.total, self.message)
            if should_cancel is not None and not self._cancel_sent and should_cancel():
                self.cancel()
        if self.error is not None:
            raise self.error
        return self.result


class Backend:
    """A running worker and its calls (use :func:`get`)."""

    def __init__(self, python):
        self.python = python
        self.info = None
        self._ids = itertools.count(1)
        self._calls = {}
        self._lock = threading.Lock()
        self._dead = None
        if python:
            self.transport = _Subprocess(python, self._dispatch, self._eof)
        else:
            self.transport = _InProcess(self._dispatch, self._eof)
        self.hello = self.request("hello", {"protocol": PROTOCOL})

    def request(self, cmd, args=None):
        """Send a request; returns its :class:`Call` at once."""
        call = Call(self, next(self._ids), cmd)
        with self._lock:
            dead = self._dead
            if dead is None:
                self._calls[call.id] = call
        if dead is not None:
            call.messages.put({"type": "error", "kind": "worker", "message": dead, "log_tail": self.log_tail()})
            return call
        self.transport.send({"id": call.id, "cmd": cmd, "args": args or {}})
        return call

    def send(self, cmd, args):
        """Send a control message (cancel) whose answer nobody waits for."""
        self.transport.send({"id": None, "cmd": cmd, "args": args})

    def ready(self, timeout=HANDSHAKE_TIMEOUT_S):
        """Wait for the handshake; returns the worker's ``hello`` answer or raises WorkerError."""
        deadline = time.monotonic() + timeout
        while not self.hello.poll():
            if time.monotonic() > deadline:
                raise WorkerError(f"the worker ({self.transport.description}) did not answer within {timeout:.0f} s",
                                  log_tail=self.log_tail())
            time.sleep(0.05)
        if self.hello.error is not None:
            raise self.hello.error
        self.info = self.hello.result
        return self.info

    def alive(self):
        return self._dead is None and self.transport.alive()

    def log_tail(self, lines=12):
        return "\n".join(list(self.transport.tail)[-lines:])

    def _dispatch(self, msg):
        rid = msg.get("id")
        with self._lock:
            call = self._calls.get(rid)
            if call is not None and msg.get("type") in ("result", "error"):
                del self._calls[rid]
        if call is None:
            return
        if call is self.hello and msg.get("type") == "error":
            self._eof(f"handshake failed: {msg.get('message')}")  # a worker that does not speak our protocol
        call.messages.put(msg)

    def _eof(self, why):
        with self._lock:
            if self._dead is None:
                self._dead = why
            calls, self._calls = list(self._calls.values()), {}
        tail = self.log_tail()
        for call in calls:
            call.messages.put({"type": "error", "kind": "worker", "message": why, "log_tail": tail})

    def close(self):
        self._eof("the worker was stopped")
        self.transport.close()


_backend = None
_backend_lock = threading.Lock()


def get(context=None):
    """The session's worker, started (with the handshake under way) if none is running."""
    global _backend
    python = worker_python(context)
    with _backend_lock:
        if _backend is not None and (not _backend.alive() or _backend.python != python):
            _backend.close()
            _backend = None
        if _backend is None:
            _backend = Backend(python)
        return _backend


def current():
    """The running worker, or None."""
    return _backend if _backend is not None and _backend.alive() else None


def stop():
    """Stop the worker (frees all its memory, GPU included). True if one was running."""
    global _backend
    with _backend_lock:
        backend, _backend = _backend, None
    if backend is None:
        return False
    backend.close()
    return True


def run(context, cmd, args, progress=None, should_cancel=None):
    """Blocking request (background mode, the render engine): handshake, then the call's result."""
    backend = get(context)
    backend.ready()
    return backend.request(cmd, args).wait(progress, should_cancel)


atexit.register(stop)
