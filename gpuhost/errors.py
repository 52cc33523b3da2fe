"""Errors a user can act on: each carries one line that names the problem and the fix."""


class GpuhostError(Exception):
    """Base class: the message is shown as one line, without a traceback."""


class UsageError(GpuhostError):
    """Bad input from the user: a flag, a version, inventory data."""


class MatrixError(GpuhostError):
    """The compatibility matrix data is broken (names the file and entry)."""


class UnknownGpu(GpuhostError):
    """A GPU name, PCI ID or compute capability that the matrix cannot place."""


class Unresolvable(GpuhostError):
    """No plan satisfies every GPU, the policy and the matrix together."""
