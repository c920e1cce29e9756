"""StreamVision: the Faust app, its topology, services, web views and CLI."""
