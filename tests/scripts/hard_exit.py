# Kills its own process with os._exit(1) at candle 9.
import os

if int(os.environ["GLOBAL_INDEX"]) == 9:
    os._exit(1)
print("SIGNAL_START\n[]\nSIGNAL_END")
