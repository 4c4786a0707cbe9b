"""The Cloudcraft AWS-account API: models.py (what it answers), errors.py (how it fails), limiter.py (the shared
rate limit) and client.py (the calls Gatehouse makes)."""
