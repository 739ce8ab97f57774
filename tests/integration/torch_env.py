# For the tests of the Python model pipeline (models/train/): they need
# Debian's python3-torch, python3-numpy and python3-sentencepiece, which live
# under /usr/bin/python3 and not in another interpreter the runner may use.
# require() re-runs the calling test there, or skips it with a printed reason
# (in the "N passed, N failed" form the runner reads) when they are missing.
import importlib
import os
import sys


def have_deps():
    try:
        for name in ("numpy", "sentencepiece", "torch"):
            importlib.import_module(name)
        return True
    except ImportError:
        return False


def require():
    if have_deps():
        return
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("skipped: python3-torch, python3-numpy or python3-sentencepiece is not installed")
    print("0 passed, 0 failed")
    sys.exit(0)
