# Raises on every candle; candle 0 first sleeps 1 s, so later candles fail first in time.
import os
import time

index = int(os.environ["GLOBAL_INDEX"])
if index == 0:
    time.sleep(1)
raise RuntimeError(f"failed at {index}")
