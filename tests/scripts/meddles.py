# Changes the process state a candle may not leave behind, after reporting, as a bit mask, which of its
# own changes from an earlier candle it still finds: 1 environment variable, 2 working directory,
# 4 sys.argv, 8 sys.path, 16 SIGTERM handler, 32 umask, 64 sys.stdin, 128 fd 0, 256 a pending alarm,
# 512 recursion limit, 1024 warnings filter.  0 on every candle = everything was restored.
import os
import signal
import sys
import tempfile
import warnings

seen = 0
seen |= 1 if "MEDDLED" in os.environ else 0
seen |= 2 if os.getcwd() == tempfile.gettempdir() else 0
seen |= 4 if "meddled" in sys.argv else 0
seen |= 8 if "/meddled" in sys.path else 0
seen |= 16 if getattr(signal.getsignal(signal.SIGTERM), "meddled", False) else 0
old_umask = os.umask(0o077)
seen |= 32 if old_umask == 0o077 else 0
seen |= 64 if getattr(sys.stdin, "meddled", False) else 0
seen |= 128 if os.fstat(0).st_size > 0 else 0
seen |= 256 if signal.getitimer(signal.ITIMER_REAL)[0] > 0 else 0
seen |= 512 if sys.getrecursionlimit() == 4321 else 0
seen |= 1024 if any(f[0] == "error" and f[2] is UserWarning for f in warnings.filters) else 0


def handler(signum, frame):
    pass


handler.meddled = 1
os.environ["MEDDLED"] = os.environ["GLOBAL_INDEX"]
os.chdir(tempfile.gettempdir())
sys.argv.append("meddled")
sys.path.append("/meddled")
signal.signal(signal.SIGTERM, handler)


class Stdin:
    meddled = True


sys.stdin = Stdin()
with open(__file__, "rb") as source:  # a non-empty file as fd 0
    os.dup2(source.fileno(), 0)
signal.alarm(3600)
sys.setrecursionlimit(4321)
warnings.simplefilter("error", UserWarning)
print("INDICATOR_START")
print('{"current": %d}' % seen)
print("INDICATOR_END")
