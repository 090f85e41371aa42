"""The line's configuration: typed sections, loading a folder with every problem named, shift
calendars, secrets.
"""
