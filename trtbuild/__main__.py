import os
import sys

try:
    from trtbuild.cli import main

    status = main()
except KeyboardInterrupt:
    # Ctrl-C before main() could handle it (importing, parsing the arguments): the same exit status
    # as later, instead of a traceback and death by the signal.
    print("interrupted", file=sys.stderr)
    status = 130
if status == 130:
    # Interrupted: what the run started is stopped and cleaned up by now. Skip the interpreter's
    # shutdown, after which the process still died of the signal now and then (exit -2, not 130),
    # for a Ctrl-C caught early in the run.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)
sys.exit(status)
