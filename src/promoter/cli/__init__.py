"""The command line: argument parsing, output and exit codes. The only layer that prints or exits."""
