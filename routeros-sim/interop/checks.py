"""Runs interop checks: every check runs, each failure is reported with its traceback."""

import traceback


def run_checks(checks):
    """Runs `checks` (functions that raise on failure); returns the process exit status."""
    passed = failed = 0
    for check in checks:
        try:
            check()
        except Exception:  # noqa: BLE001 - report every failure, run every check
            failed += 1
            print(f"FAIL {check.__name__}")
            traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {check.__name__}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0
