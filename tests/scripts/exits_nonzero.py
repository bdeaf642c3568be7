# Exits with code 3 at candle 7.
import os
import sys

if int(os.environ["GLOBAL_INDEX"]) == 7:
    print("giving up", file=sys.stderr)
    sys.exit(3)
print("SIGNAL_START\n[]\nSIGNAL_END")
