# Crashes the interpreter (SIGSEGV) at candle 4.
import ctypes
import os

if int(os.environ["GLOBAL_INDEX"]) == 4:
    ctypes.string_at(0)
print("SIGNAL_START\n[]\nSIGNAL_END")
