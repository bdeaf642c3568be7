# Never prints a marked block.
print("just chatting")
