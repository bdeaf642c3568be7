# Prints blocks on candles 3..last only (COMPONENT_PARAMS "last", default 9), then nothing.
import json
import os

last = json.loads(os.environ["COMPONENT_PARAMS"]).get("last", 9)
if 3 <= int(os.environ["GLOBAL_INDEX"]) <= last:
    print("SIGNAL_START\n[]\nSIGNAL_END")
