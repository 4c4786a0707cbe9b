"""Gatehouse: the code that runs in Lambda. Everything here is packaged by Chalice."""
