"""Development stack on one machine, without Docker: the embedded broker and Redis, child processes that
never outlive their parent, and the one helper that starts, awaits and stops worker processes.
"""
