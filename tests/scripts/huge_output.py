# Prints 2 MiB of logging at candle 3 (over the 1 MiB per-candle cap).
import os

if int(os.environ["GLOBAL_INDEX"]) == 3:
    print("x" * (2 << 20))
print("SIGNAL_START\n[]\nSIGNAL_END")
