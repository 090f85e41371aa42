"""The floor: the devices of every station under their supervisors, and what they do in the
flow of work.
"""
