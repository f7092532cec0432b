# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators that run a worker request: modal with a timer in the UI, blocking in background mode.

A subclass implements ``request(context) -> (cmd, args)`` (read properties, build one plain
request: STYLE.md 2.14) and ``finish(context, result)`` (apply the result to Blender data on the
main thread). ``execute`` is the blocking path (``blender -b``, scripts, tests: modal operators
and timers do not run headless, BLENDER.md 3.3); ``invoke`` starts the request and a modal
handler that drains it on a timer, shows progress in the status bar and header, and cancels on
ESC. Errors reach ``self.report`` with a sentence that says what to do.
"""

import bpy

from . import backend


class WorkerJob:
    """Mixin for ``bpy.types.Operator`` subclasses (see the module docstring)."""

    _call = None
    _timer = None

    def request(self, context):
        raise NotImplementedError

    def finish(self, context, result):
        raise NotImplementedError

    def _fail(self, exc):
        cancelled = isinstance(exc, backend.Cancelled)
        self.report({"WARNING"} if cancelled else {"ERROR"}, "Relight: cancelled" if cancelled else str(exc))
        return {"CANCELLED"}

    def _finish(self, context, result):
        try:
            return self.finish(context, result)
        except (ValueError, OSError, RuntimeError) as exc:
            return self._fail(exc)

    def execute(self, context):
        try:
            cmd, args = self.request(context)
            result = backend.run(context, cmd, args)
        except (backend.WorkerError, ValueError, OSError) as exc:
            return self._fail(exc)
        return self._finish(context, result)

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        try:
            cmd, args = self.request(context)
            self._call = backend.get(context).request(cmd, args)
        except (backend.WorkerError, ValueError, OSError) as exc:
            return self._fail(exc)
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 1000)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        call = self._call
        if event.type == "ESC" and event.value == "PRESS":
            call.cancel()
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        finished = call.poll()
        if call.total:
            context.window_manager.progress_update(int(1000 * call.done / call.total))
        if context.area is not None:
            context.area.header_text_set(f"Relight {call.cmd}: {call.message or 'starting'} (Esc to cancel)")
        if not finished:
            return {"RUNNING_MODAL"}
        self._cleanup(context)
        if call.error is not None:
            return self._fail(call.error)
        return self._finish(context, call.result)

    def cancel(self, context):  # Blender calls this when the modal operator is cancelled
        if self._call is not None:
            self._call.cancel()
        self._cleanup(context)

    def _cleanup(self, context):
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        if context.area is not None:
            context.area.header_text_set(None)
