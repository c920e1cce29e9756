"""Stream processors. Each agent is a thin loop: pure code elsewhere, then a send or a table update."""
