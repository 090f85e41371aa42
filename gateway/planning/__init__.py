"""Planning in the running gateway: when to replan, the worker process, the line's plan and the
stations' queues.
"""
