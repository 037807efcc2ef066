"""The base class of objects that own a pointer from the library."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, ClassVar, Iterator, TypeVar

from ._errors import HandleClosedError

__all__ = ["Handle"]

_H = TypeVar("_H", bound="Handle")


class Handle:
    """Owns one pointer from the library and frees it exactly once.

    The pointer is freed by :meth:`close`, at the end of a ``with`` block, or when the object
    is garbage collected, whichever comes first. Using the object after that raises
    :class:`HandleClosedError`.

    Calls borrow the pointer for their duration, so a :meth:`close` from another thread
    while a call is running defers the free until that call returns instead of freeing
    memory still in use.
    """

    #: The name used in messages, such as "SigningKey".
    _kind: ClassVar[str] = "handle"

    # Class-level defaults keep __del__ safe on an object whose __init__ failed early.
    _ptr: Any = None
    _borrows: int = 0
    _closing: bool = False
    _guard: threading.Lock | None = None

    def _adopt(self, ptr: Any) -> None:
        """Takes ownership of `ptr`, a non-NULL pointer of the subclass's type."""
        if not ptr:
            raise ValueError(f"{self._kind}: the library returned a NULL pointer")
        self._guard = threading.Lock()
        self._ptr = ptr

    @classmethod
    def _free(cls, ptr: Any) -> None:
        """Releases `ptr` with the library's destructor. Subclasses implement it."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        """Whether the handle has been closed."""
        return self._ptr is None or self._closing

    @contextmanager
    def _borrow(self) -> Iterator[Any]:
        """Yields the live pointer for the duration of one call.

        Raises:
            HandleClosedError: the handle was closed.
        """
        guard = self._guard
        if guard is None:
            raise HandleClosedError(f"this {self._kind} has been closed")
        with guard:
            if self._ptr is None or self._closing:
                raise HandleClosedError(f"this {self._kind} has been closed")
            self._borrows += 1
            ptr = self._ptr
        try:
            yield ptr
        finally:
            release = None
            with guard:
                self._borrows -= 1
                if self._closing and self._borrows == 0 and self._ptr is not None:
                    release, self._ptr = self._ptr, None
            if release is not None:
                self._free(release)

    def close(self) -> None:
        """Frees the native object. Closing twice is allowed and does nothing."""
        guard = self._guard
        if guard is None:
            return
        release = None
        with guard:
            if self._ptr is None or self._closing:
                return
            self._closing = True
            if self._borrows == 0:
                release, self._ptr = self._ptr, None
        if release is not None:
            self._free(release)

    def __enter__(self: _H) -> _H:
        """Returns the handle itself; it is closed when the block ends."""
        if self.closed:
            raise HandleClosedError(f"this {self._kind} has been closed")
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Closes the handle."""
        self.close()

    def __del__(self) -> None:
        """Frees the native object when the handle is garbage collected."""
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit the library may be gone
            pass
