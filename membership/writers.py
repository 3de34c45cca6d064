"""SQLite's writers, queued: a request waiting to write sleeps until the writer ahead of it finishes.

SQLite lets one connection write at a time and tells the others only "locked", so a waiting writer
can do no better than try again after a sleep. With two worker processes, a worker spent about a
seventh of its time in those sleeps, part of it after the lock had already come free (make bench,
README). Here every Classgate process that writes to one database file also takes an exclusive
flock on a file beside it, `<database>-writers`, just before BEGIN IMMEDIATE, and lets go of it as
the transaction ends. The kernel wakes the next waiter the moment it is let go.

The flock only orders the waiting: SQLite's own lock still decides who writes. A writer that does
not take the flock (the sqlite3 shell, a migration) is waited for as before, by trying again.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref

try:
    import fcntl
except ImportError:  # not on Windows: writers there wait by trying again
    fcntl = None


class WriterQueue:
    """One database file's queue of writers: a lock for this process's threads, and a flock between processes."""

    def __init__(self, database: str) -> None:
        self.path = f"{database}-writers"
        self._fd: int | None = None
        self._closer: weakref.finalize | None = None  # closes the descriptor when the queue goes
        self._threads = threading.Lock()
        self.holder: int | None = None  # the thread that holds the queue, if one does
        _QUEUES.add(self)

    def acquire(self, timeout: float) -> bool:
        """Wait for this thread's turn; False (without waiting) when it holds the queue already or cannot."""
        me = threading.get_ident()
        if self.holder == me or not self._threads.acquire(timeout=timeout):
            return False
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self._closer = weakref.finalize(self, os.close, self._fd)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except OSError:
            self._threads.release()
            return False
        self.holder = me
        return True

    def release(self) -> None:
        """Let the next writer go."""
        if self.holder is None:
            return
        self.holder = None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _forget(self) -> None:
        """In a forked child: none of the parent's turn, and a descriptor of its own when it writes.

        Closing the copy inherited from the parent leaves the parent's flock as it was.
        """
        if self._closer is not None:
            self._closer()
        self._fd, self._closer, self.holder, self._threads = None, None, None, threading.Lock()


_QUEUES: weakref.WeakSet[WriterQueue] = weakref.WeakSet()


def _forget_after_fork() -> None:
    for queue in list(_QUEUES):
        queue._forget()


os.register_at_fork(after_in_child=_forget_after_fork)


class QueuedConnection(sqlite3.Connection):
    """A connection that holds its queue's turn from BEGIN IMMEDIATE until commit, rollback or close."""

    writers: WriterQueue | None = None
    holding = False

    def wait_turn(self, timeout: float) -> None:
        """Queue behind the other writers (a no-op when this connection already holds the turn)."""
        if not self.holding and self.writers is not None and self.writers.acquire(timeout):
            self.holding = True

    def hand_on(self) -> None:
        """Give the turn to the next writer, if this connection holds it."""
        if self.holding:
            self.holding = False
            self.writers.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.hand_on()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.hand_on()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.hand_on()

    def __del__(self) -> None:
        self.hand_on()


def connection_factory(database: str) -> type[QueuedConnection] | None:
    """The sqlite3 connection class for a database file, queued on its writers' file (None without flock)."""
    if fcntl is None:
        return None
    return type("QueuedConnection", (QueuedConnection,), {"writers": WriterQueue(database)})
