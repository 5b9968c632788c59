"""`python -m hibiki_devstack.child PARENT_PID PROGRAM [ARGS…]`: exec PROGRAM so that it dies with PARENT_PID.

The death signal is set here, after the parent's fork, instead of in a Popen preexec_fn: a preexec_fn forces
fork() over vfork(), and a fork() of a parent with live gRPC channels runs gRPC's fork handlers in the child,
which can abort it. The signal survives the exec of PROGRAM. Keep this module free of heavy imports.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def main() -> None:
    parent, program = int(sys.argv[1]), sys.argv[2:]
    if sys.platform.startswith("linux"):
        # Linux: the kernel sends SIGTERM when the parent dies, even by SIGKILL.
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        sys.exit(f"hibiki_devstack.child: parent {parent} is gone; not starting {program[0]}")
    os.execvp(program[0], program)


if __name__ == "__main__":
    main()
