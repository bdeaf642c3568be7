# Sums squares in a multiprocessing pool (fork start method): the script runs as a real __main__ module,
# so its functions pickle; the pool's processes end with the candle.
import multiprocessing
import os


def square(x):
    return x * x


with multiprocessing.get_context("fork").Pool(2) as pool:
    total = sum(pool.map(square, range(int(os.environ["GLOBAL_INDEX"]) + 1)))
print("INDICATOR_START")
print('{"current": %d}' % total)
print("INDICATOR_END")
