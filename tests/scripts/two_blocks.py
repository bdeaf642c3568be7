# Prints two blocks at candle 6.
import os

print("SIGNAL_START\n[]\nSIGNAL_END")
if int(os.environ["GLOBAL_INDEX"]) == 6:
    print("SIGNAL_START\n[]\nSIGNAL_END")
