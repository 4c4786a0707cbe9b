"""Models, errors, settings, clock, notifications and observability: what every other package builds on."""
