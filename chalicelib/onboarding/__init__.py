"""One account at a time: arrival (onboarding) and departure (offboarding)."""
