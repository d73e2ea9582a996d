"""checks.py: what the Python checkers under tests/ share. check() prints
"ok   WHAT" or "FAIL WHAT DETAIL" and counts; summary() prints the closing
line tests/run reads ("N passed, M failed") and returns the exit status.
A checker imports it with tests/ put first on sys.path."""

passed = failed = 0


def check(what, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what} {detail}"[:3000])
    return ok


def summary():
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0
