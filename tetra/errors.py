"""The exception hierarchy of tetra.

::

    TetraError                 anything tetra reports to a user as a message
    ├── KernelError            the running kernel lacks what was asked for
    │   └── BtfError           BTF missing, malformed, or a member not found
    ├── SensorError            a BPF program failed to compile, load or attach
    ├── DecodeError            a ring buffer record does not match its layout
    ├── ExportError            an exporter could not be opened or written
    ├── RecordingError         a ring recording (tetra replay) cannot be read or written
    └── PolicyErrors           a TracingPolicy file is invalid; carries every located issue
                               (tetra.policy.errors, with PolicyIssue: file:line:col: path: message)

The CLI turns any ``TetraError`` into one line on stderr and a non-zero exit,
never a traceback.
"""


class TetraError(Exception):
    """Base of every error tetra reports as a message."""


class KernelError(TetraError):
    """The running kernel lacks a feature or file tetra needs."""


class BtfError(KernelError):
    """BTF is missing or malformed, or a type or member is not in it."""


class SensorError(TetraError):
    """A BPF program failed to compile, load or attach."""


class DecodeError(TetraError):
    """A record from the kernel does not match the layout of its opcode."""


class ExportError(TetraError):
    """An exporter could not open or write its destination."""


class RecordingError(TetraError):
    """A ring recording (``tetra agent --record-ring``, ``tetra replay``) cannot be read or written."""
