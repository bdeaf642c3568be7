# Counts its candles in a module-level variable of a sibling module (state a script keeps on purpose):
# in warm isolation the count grows through a chunk, in process isolation every candle starts at 1.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "helpers"))
import counter

counter.count += 1
print("INDICATOR_START")
print('{"current": %d}' % counter.count)
print("INDICATOR_END")
