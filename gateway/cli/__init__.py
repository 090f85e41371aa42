"""The command line: `linegate run | check-config | trace | devices | simulate | plan | demo`."""
