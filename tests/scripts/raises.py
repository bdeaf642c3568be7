# Raises at candle 5 (GLOBAL_INDEX), after warm-up candles with empty blocks.
import os

if int(os.environ["GLOBAL_INDEX"]) == 5:
    raise ValueError("boom at five")
print("SIGNAL_START\n[]\nSIGNAL_END")
