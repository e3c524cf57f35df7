"""Rounds: the settings and target lists that plan one, the runner that measures it
concurrently, the service that stores it, and the daemon that schedules them."""
