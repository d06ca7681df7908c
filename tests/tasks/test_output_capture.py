"""captured_output: one thread's capture never takes another thread's prints, and overlapping
captures leave the real streams in place (contextlib.redirect_stdout, used before, did not)."""

from __future__ import annotations

import io
import sys
import threading

from trtbuild.tasks.output_capture import captured_output, thread_routed_streams


def test_two_threads_capture_their_own_prints_and_the_main_thread_prints_through() -> None:
    real_out, real_err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = real_out, real_err  # stand-ins for the terminal, set before installing
    captures = {name: io.StringIO() for name in ("a", "b")}
    # Each thread enters its capture, waits for the other to have entered its own, prints, and
    # leaves in the opposite order it entered: redirect_stdout ended with b's buffer as sys.stdout.
    entered, a_left = threading.Barrier(3), threading.Event()

    def task(name: str) -> None:
        with captured_output(captures[name], captures[name]):
            entered.wait()
            for _ in range(50):
                print(f"{name} out")
                print(f"{name} err", file=sys.stderr)
            if name == "b":
                a_left.wait()
        if name == "a":
            a_left.set()

    try:
        with thread_routed_streams():
            threads = [threading.Thread(target=task, args=(name,)) for name in captures]
            for thread in threads:
                thread.start()
            entered.wait()
            print("main out")
            print("main err", file=sys.stderr)
            for thread in threads:
                thread.join()
            print("summary")
        after_run = sys.stdout, sys.stderr
    finally:
        sys.stdout, sys.stderr = saved
    assert after_run == (real_out, real_err)
    assert real_out.getvalue() == "main out\nsummary\n"
    assert real_err.getvalue() == "main err\n"
    for name, capture in captures.items():
        lines = capture.getvalue().splitlines()
        assert sorted(set(lines)) == [f"{name} err", f"{name} out"] and len(lines) == 100


def test_a_capture_outside_a_run_installs_and_removes_the_routing_itself() -> None:
    saved = sys.stdout
    captured = io.StringIO()
    with captured_output(captured):
        print("inside")
    assert sys.stdout is saved
    assert captured.getvalue() == "inside\n"
