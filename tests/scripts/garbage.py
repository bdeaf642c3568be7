# Prints a block whose body is not JSON, from candle 4 on.
import os

if int(os.environ["GLOBAL_INDEX"]) >= 4:
    print("SIGNAL_START\n[{'not': json}]\nSIGNAL_END")
