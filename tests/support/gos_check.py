"""The Python tests' checks: check() counts a pass or prints the failure and
counts it (the test goes on); report() prints 'NAME: P passed, F failed',
the line ctest's runners read, and returns the exit code."""
import sys

passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}", file=sys.stderr, flush=True)
    return cond


def failures():
    return failed


def report(name):
    print(f"{name}: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0
