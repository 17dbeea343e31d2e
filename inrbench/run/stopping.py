"""Stopping a run on SIGTERM or SIGINT: at an optimizer step, with one checkpoint, every process
together, within a bounded time.

The signal handler only notes the signal. At the end of each optimizer step the processes
agree (an all-reduce of the noted signal; one process alone needs none), so a signal sent to
the main process only, to every process, or to each at a different step stops all of them at
the same step. There every process calls ``save_checkpoint`` (rank 0 writes ``last.ckpt``, the
others wait for it) and raises :class:`Interrupted`. On the way out the process group is shut
and the main process waits for the processes it started.

Lightning's own SIGTERM handler is kept out: it calls ``dist.broadcast`` inside the handler,
which races with the collectives of training and can hang every rank. A watchdog armed by the
signal ends a process that has not stopped within ``STOP_WITHIN_S`` seconds (a rank stuck or
gone), so no process waits forever.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import lightning as L

from inrbench.errors import Interrupted

# seconds from the signal to the end of every process; INRBENCH_STOP_WITHIN_S overrides it
STOP_WITHIN_S = 300.0


class StopOnSignal(L.Callback):
    """SIGTERM and SIGINT during ``trainer.fit``: the signal is noted, the optimizer step under
    way ends, ``last.ckpt`` is written at it and :class:`Interrupted` stops the run (every
    process, at the same step). A second SIGINT stops at once.

    A context manager around ``fit`` installs the handler; Lightning's SignalConnector is kept
    from installing its own over it."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, last: Path, within_s: float | None = None):
        self.last, self.signum, self._before = last, None, {}
        env = os.environ.get("INRBENCH_STOP_WITHIN_S")
        self.within_s = float(within_s if within_s is not None else env or STOP_WITHIN_S)
        self.trainer = None
        self._watchdog: threading.Timer | None = None
        self._lock = threading.Lock()
        self._wakeup: tuple[int, int, int] | None = None

    # -- the handler -----------------------------------------------------------------------

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._before = {s: signal.signal(s, self._note) for s in self.SIGNALS}
            self._watch_signals()
        return self

    def _watch_signals(self) -> None:
        """Arm the watchdog from a thread told of each signal through Python's wakeup fd: the
        handler itself runs only when the main thread is back in Python, which a collective
        waiting for a stuck process never is."""
        read, write = os.pipe()
        os.set_blocking(write, False)
        self._wakeup = (read, write, signal.set_wakeup_fd(write, warn_on_full_buffer=False))

        def watch():
            try:
                while got := os.read(read, 64):
                    for signum in got:
                        if signum in self.SIGNALS:
                            self._arm(signum)
            except OSError:
                pass
            finally:
                os.close(read)

        threading.Thread(target=watch, name="inrbench-stop-watch", daemon=True).start()

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is Interrupted and self.trainer is not None and \
                    self.trainer.world_size > 1:
                end_processes(self.trainer)
        finally:
            for s, handler in self._before.items():
                signal.signal(s, handler)
            self._before = {}
            if self._wakeup:
                read, write, before = self._wakeup
                signal.set_wakeup_fd(before)
                os.close(write)  # ends the watching thread's read
                self._wakeup = None
            if self._watchdog is not None:
                self._watchdog.cancel()

    def _note(self, signum, frame):
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is None:
            self.signum = signum
        elif signum == signal.SIGTERM:
            self.signum = signum  # a scheduler's SIGTERM after a Ctrl+C names the exit status

    def _arm(self, signum: int) -> None:
        """Start the watchdog (once): ``within_s`` seconds from the first signal."""
        with self._lock:
            if self._watchdog is not None:
                return
            self._watchdog = threading.Timer(self.within_s, self._expire, (signum,))
            self._watchdog.daemon = True
            self._watchdog.start()

    def _expire(self, signum: int) -> None:
        """The processes did not stop together in time: end this one (and those it started)."""
        rank = getattr(self.trainer, "global_rank", 0)
        out = self.last.parent
        print(f"inrbench: stopped by {signal.Signals(signum).name}, but rank {rank} did not "
              f"stop within {self.within_s:g} s (another process is stuck or gone); no "
              f"checkpoint at this step: continue from the newest in {out} with --resume",
              file=sys.stderr, flush=True)
        if self.trainer is not None:
            kill_children(self.trainer, signal.SIGKILL)
        os._exit(128 + signum)

    # -- the callback ----------------------------------------------------------------------

    def setup(self, trainer, pl_module, stage):
        self.trainer = trainer
        connector = getattr(trainer, "_signal_connector", None)
        if connector is None or not self._before:
            return
        install = connector._register_signal

        def all_but_ours(signum, handlers):  # SIGUSR1 (SLURM's requeue) stays Lightning's
            if signum not in self.SIGNALS:
                install(signum, handlers)

        connector._register_signal = all_but_ours

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # mid-accumulation the step is not complete yet: stop at the next optimizer step
        if getattr(trainer.fit_loop, "_should_accumulate", lambda: False)():
            return
        signum = self._agreed(trainer)
        if not signum:
            return
        self._arm(signum)  # a process told by the others is bounded too
        trainer.save_checkpoint(self.last, weights_only=False)  # rank 0 writes, all wait
        raise Interrupted(signum, self.last.parent.parent, trainer.global_step,
                          rank=trainer.global_rank)

    def _agreed(self, trainer) -> int:
        """The signal any process noted (0: none), the same on every process."""
        if trainer.world_size == 1:
            return int(self.signum or 0)
        import torch
        import torch.distributed as dist

        flag = torch.tensor([int(self.signum or 0)], device=trainer.strategy.root_device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())


def kill_children(trainer, signum: int) -> None:
    """Signal the processes Lightning's launcher started from this one (rank 0's children)."""
    for proc in getattr(trainer.strategy.launcher, "procs", None) or []:
        if proc.poll() is None:
            proc.send_signal(signum)


def end_processes(trainer) -> None:
    """After every process stopped at the same step: shut the process group, and in the main
    process wait for the processes it started (the watchdog bounds both)."""
    close_process_group()
    for proc in getattr(trainer.strategy.launcher, "procs", None) or []:
        proc.wait()


def close_process_group() -> None:
    """Shut gloo/NCCL down before the interpreter exits.

    Lightning leaves the process group open; its threads, torn down by interpreter exit
    instead, sometimes abort the process ("terminate called without an active exception",
    exit -6) after the results were written."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
