"""Planning the line with OR-Tools CP-SAT (issue 4).

Everything here that imports ortools runs in a worker process, never in the gateway's
own: the solver costs ~80 MiB and can crash the process it runs in.
"""
