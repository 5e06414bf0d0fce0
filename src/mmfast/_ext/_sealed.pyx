# cython: language_level=3, auto_pickle=False
"""A base for objects that become read-only once built (fitted models, issue 15).

Attribute assignment goes through ``tp_setattro`` written here in C: ~20 ns a set instead of
the ~300 ns of a ``__setattr__`` in Python, so the ~40 assignments of a millisecond fit cost
nothing measurable.  After ``_seal()`` every assignment or deletion raises AttributeError;
caches that a sealed object fills later live in objects it owns (their contents change, the
object's attributes do not) or in ``functools.cached_property`` (which writes ``__dict__``).
Not pickled here (``auto_pickle=False``): subclasses pickle their ``__dict__`` and seal again
in ``__setstate__``.
"""
from cpython.object cimport PyObject_GenericSetAttr


cdef class Sealable:
    """Attributes settable until ``_seal()``; then AttributeError naming the attribute."""

    cdef bint _is_sealed

    def __setattr__(self, name, value):
        if self._is_sealed:
            raise AttributeError(
                f"cannot set {name!r}: a fitted {type(self).__name__} is read-only "
                "(refit, update, with_response or with_fixed give a new model)"
            )
        PyObject_GenericSetAttr(self, name, value)

    def __delattr__(self, name):
        if self._is_sealed:
            raise AttributeError(f"cannot delete {name!r}: a fitted {type(self).__name__} is read-only")
        PyObject_GenericSetAttr(self, name, <object>NULL)

    def _seal(self):
        """Make the object read-only (the end of a fit, or of unpickling a fitted one)."""
        self._is_sealed = True

    def _unseal(self):
        """Writable again until the next ``_seal()``: only for a computation that moves the
        fitted state and puts it back (``results.MixedModelResults._reopened``)."""
        self._is_sealed = False

    @property
    def sealed(self) -> bool:
        """Whether the object is read-only."""
        return self._is_sealed
