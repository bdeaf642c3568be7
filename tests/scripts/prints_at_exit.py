# Prints its block from an atexit handler and a second line from a non-daemon thread: a fresh process
# (and process isolation) shows both in the candle's output; warm isolation runs neither at the candle's end.
import atexit
import os
import threading
import time


def late():
    time.sleep(0.01)
    print("thread done")


threading.Thread(target=late).start()
atexit.register(print, 'INDICATOR_START\n{"current": %s}\nINDICATOR_END' % os.environ["GLOBAL_INDEX"])
