"""The site demo (``make demo``): the office in-process, a broker, two or three lines (each a
``linegate demo`` subprocess with its devices and operators) and a simulated shop that
feeds the office its orders.

It lives apart from the office and the line on purpose: the office never imports the
gateway or the simulators, and nothing of the line imports the office (pyproject.toml's
import contracts); the lines run through their own command line, as a site would run them.
"""
