# Draws from numpy's global random generator without seeding it: fresh processes get different draws.
import numpy as np

print("INDICATOR_START")
print('{"current": %r}' % float(np.random.random()))
print("INDICATOR_END")
