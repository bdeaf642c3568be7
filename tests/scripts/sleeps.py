# Hangs forever at candle 2.
import os
import time

if int(os.environ["GLOBAL_INDEX"]) == 2:
    while True:
        time.sleep(60)
print("SIGNAL_START\n[]\nSIGNAL_END")
