"""Runs every test_* function of every test_*.py module here, each in a fresh state, in order.

  run.py                 all tests
  run.py http_server     only modules whose name contains "http_server"
  run.py -k pipelin      only tests whose name contains "pipelin"

Prints one line per test and, last, "N passed, N failed". Exit status 1 when anything failed.
"""
import importlib
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main(argv):
    name_filter = None
    module_filter = []
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "-k" and args:
            name_filter = args.pop(0)
        else:
            module_filter.append(a)
    modules = sorted(f[:-3] for f in os.listdir(HERE) if f.startswith("test_") and f.endswith(".py"))
    if module_filter:
        modules = [m for m in modules if any(x in m for x in module_filter)]
    passed = failed = 0
    failures = []
    for mod_name in modules:
        try:
            mod = importlib.import_module(mod_name)
        except Exception:
            print(f"FAIL {mod_name} (import)\n{traceback.format_exc()}", flush=True)
            failed += 1
            failures.append(mod_name)
            continue
        tests = [(n, getattr(mod, n)) for n in dir(mod) if n.startswith("test_") and callable(getattr(mod, n))]
        tests.sort(key=lambda t: t[1].__code__.co_firstlineno)
        for name, fn in tests:
            if name_filter and name_filter not in name:
                continue
            full = f"{mod_name}.{name}"
            t0 = time.time()
            try:
                fn()
            except Exception as e:
                failed += 1
                failures.append(full)
                detail = traceback.format_exc() if not isinstance(e, AssertionError) else f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}"
                print(f"FAIL {full} ({time.time() - t0:.1f}s)\n{detail}", flush=True)
            else:
                passed += 1
                print(f"ok   {full} ({time.time() - t0:.1f}s)", flush=True)
    if failures:
        print("failed: " + " ".join(failures))
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
