# State for counts_in_module.py.
count = 0
